"""Augmentation of training batches: each one does what it says, and only in training."""

from __future__ import annotations

import math

import pytest
import torch

from autotag.config import ConfigError, make_config
from autotag.serving.tagger import TaggingNet
from autotag.training.augment import SNR_SPAN_DB, Augment, AugmentSettings
from autotag.training.module import TaggingModule


def _batch(n: int = 8, bands: int = 32, frames: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(n, bands, frames) * 10 - 40, (torch.rand(n, 5) > 0.5).float()


def test_only_mixup_is_on_by_default_and_off_changes_nothing() -> None:
    config = make_config(data=".", model="tiny")
    assert AugmentSettings(**config.augment_settings()) == AugmentSettings(mixup=0.2)
    assert not AugmentSettings(**{**config.augment_settings(), "mixup": 0.0}).active
    mels, targets = _batch()
    out, out_targets = Augment(AugmentSettings())(mels, targets)
    assert torch.equal(out, mels) and torch.equal(out_targets, targets)


def test_masks_set_whole_bands_and_frame_runs_to_the_examples_mean() -> None:
    mels, targets = _batch()
    out, out_targets = Augment(AugmentSettings(freq_mask=8, time_mask=20))(mels, targets)
    assert out.shape == mels.shape and torch.equal(out_targets, targets)
    changed = out != mels
    mean = mels.mean(dim=(1, 2), keepdim=True).expand_as(mels)
    assert torch.allclose(out[changed], mean[changed], atol=1e-4)
    for i in range(len(mels)):  # a masked bin lies in a fully masked band or a fully masked frame run
        rows, cols = changed[i].all(dim=1), changed[i].all(dim=0)
        assert torch.equal(changed[i], rows[:, None] | cols[None, :])
        assert rows.sum() < 8 and cols.sum() < 20


def test_gain_shifts_each_example_by_one_constant_within_its_range() -> None:
    mels, targets = _batch()
    out, _ = Augment(AugmentSettings(gain_db=6.0))(mels, targets)
    shift = out - mels
    assert torch.allclose(shift, shift[:, :1, :1].expand_as(shift), atol=1e-5)
    assert shift.abs().max() <= 6.0


def test_noise_lands_at_an_snr_in_its_range() -> None:
    torch.manual_seed(1)
    flat = torch.full((64, 32, 400), -30.0)
    out, _ = Augment(AugmentSettings(noise_snr_db=10.0))(flat, torch.zeros(64, 5))
    to_power = lambda db: torch.exp(db * math.log(10.0) / 10.0)  # noqa: E731
    signal, total = to_power(flat).mean(dim=(1, 2)), to_power(out).mean(dim=(1, 2))
    snr = 10 * torch.log10(signal / (total - signal))
    assert snr.min() > 10.0 - 0.5 and snr.max() < 10.0 + SNR_SPAN_DB + 0.5
    assert snr.max() - snr.min() > 5.0  # drawn per example


def test_mixup_mixes_targets_with_the_weight_of_the_examples_own_part() -> None:
    mels, targets = _batch(n=16)
    torch.manual_seed(3)
    out, mixed = Augment(AugmentSettings(mixup=0.4))(mels, targets)
    assert out.shape == mels.shape and mixed.min() >= 0 and mixed.max() <= 1
    # Where an example's own tag is on, at least half of it stays (weight >= 0.5).
    assert (mixed[targets == 1] >= 0.5 - 1e-6).all() and (mixed[targets == 0] <= 0.5 + 1e-6).all()
    assert ((mixed > 0) & (mixed < 1)).any()


def test_masks_wider_than_half_the_input_are_refused() -> None:
    with pytest.raises(ConfigError, match="time_mask 200 would mask more than half"):
        make_config(data=".", model="tiny", chunk_seconds=1.0, time_mask=200)
    with pytest.raises(ConfigError, match="freq_mask 40 would mask more than half"):
        make_config(data=".", model="tiny", n_mels=64, freq_mask=40)


@pytest.mark.filterwarnings(r"ignore:You are trying to `self.log\(\)`")
def test_augmentation_runs_in_training_steps_only_and_tagging_ignores_it() -> None:
    module = TaggingModule("tiny", ["a", "b"], n_mels=48, augment={"gain_db": 20.0})
    mels, targets = torch.randn(4, 48, 63) - 40, torch.ones(4, 2)
    module.eval()
    assert torch.equal(module(mels), module(mels))
    seen = []
    module.augment.register_forward_hook(lambda *_: seen.append(1))
    module.training_step((mels, targets), 0)
    assert seen == [1]
    net = TaggingNet(dict(module.hparams))  # a checkpoint of an augmented run still tags
    assert net.hparams.n_mels == 48
