"""The LightningModule's own rules: what a training step learns from."""

import pytest
import torch

from autotag.training.module import TaggingModule


@pytest.mark.filterwarnings("ignore:You are trying to .self.log:UserWarning")
def test_a_silent_training_chunk_adds_nothing_to_the_loss() -> None:
    torch.manual_seed(0)
    module = TaggingModule("tiny", ["a", "b"], n_mels=64, chunk_seconds=0.5, level="relative").eval()
    loud = torch.randn(2, 64, 32) * 10 + 20  # log-mels in dB, far above the silence floor
    silent = torch.full((1, 64, 32), -100.0)  # digital silence: the front end's floor
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    with_silence = module.training_step((torch.cat([loud, silent]), targets), 0)
    assert torch.allclose(with_silence, module.training_step((loud, targets[:2]), 0))
    alone = module.training_step((silent, targets[2:]), 0)
    assert alone.item() == 0.0 and alone.requires_grad  # no gradient from it, and the step still runs


def test_fine_tuning_gives_the_backbone_a_fraction_of_the_learning_rate() -> None:
    module = TaggingModule("tiny", ["a", "b"], n_mels=64, lr=1e-3, backbone_lr_factor=0.1)
    groups = module.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(1e-4)]
    assert groups[0]["params"] == list(module.net.head[-1].parameters())
    assert sum(len(g["params"]) for g in groups) == len(list(module.parameters()))
    plain = TaggingModule("tiny", ["a", "b"], n_mels=64, lr=1e-3).configure_optimizers().param_groups
    assert len(plain) == 1  # as runs saved before the factor existed resume with
