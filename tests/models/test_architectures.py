import numpy as np
import pytest
import torch

from autotag.models.architectures import LEVELS, ChunkLevel, build_model, build_tagger
from autotag.models.specs import SPECS, get_spec


@pytest.mark.parametrize("name", sorted(SPECS))
def test_paper_input_gives_one_logit_per_tag(name: str) -> None:
    spec = SPECS[name]
    frames = int(spec.chunk_seconds * 16000) // 256 + 1
    model = build_model(name, n_tags=50).eval()
    with torch.no_grad():
        out = model(torch.randn(2, spec.n_mels, frames))
    assert out.shape == (2, 50)


def test_longer_inputs_are_accepted() -> None:
    model = build_model("shortchunk_cnn", 5).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 128, 700)).shape == (1, 5)


def test_layer_shapes_follow_the_papers() -> None:
    assert sum(p.numel() for p in build_model("tiny", 8).parameters()) < 50_000
    for name in ("shortchunk_cnn", "shortchunk_resnet"):
        convs = [m for m in build_model(name, 50).blocks.modules() if isinstance(m, torch.nn.Conv2d)]
        widths = sorted({c.out_channels for c in convs})
        assert widths == [128, 256, 512]
    fcn = build_model("fcn", 50)
    pools = [b.pool.kernel_size for b in fcn.blocks]
    assert pools == [(2, 4), (2, 4), (2, 4), (3, 5), (4, 4)]
    assert [b.conv.out_channels for b in fcn.blocks] == [64, 128, 128, 128, 64]


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(ValueError, match="known models: crnn, fcn, musicnn, shortchunk_cnn, shortchunk_resnet, tiny"):
        build_model("resnet50", 10)
    with pytest.raises(ValueError, match="unknown model"):
        get_spec("")


@pytest.mark.parametrize("name", ["tiny", "shortchunk_cnn", "musicnn", "crnn"])  # every network class
def test_a_relative_network_tags_a_clip_alike_at_any_gain_and_an_absolute_one_does_not(name: str) -> None:
    spec = SPECS[name]
    frontend, _ = build_tagger(name, 5, 16000, 512, 256, spec.n_mels, 0.0, 8000.0, "absolute", False)
    wave = torch.from_numpy(np.random.default_rng(0).standard_normal((2, int(spec.chunk_seconds * 16000)), "f4"))
    wave *= torch.linspace(0.05, 0.5, wave.shape[1])  # a crescendo, peaking at -6 dBFS
    outputs = {}
    for level in LEVELS:
        torch.manual_seed(0)
        net = build_model(name, 5, level).eval()
        with torch.no_grad():
            outputs[level] = [net(frontend(wave * 10 ** (gain / 20))) for gain in (0, -20, -40)]
    loud, *quiet = outputs["relative"]
    for out in quiet:
        torch.testing.assert_close(out, loud, atol=1e-4, rtol=0)
    assert all((out - outputs["absolute"][0]).abs().max() > 1e-3 for out in outputs["absolute"][1:])


def test_a_relative_chunk_keeps_80_db_below_its_loudest_bin_around_its_mean_and_adds_no_weights() -> None:
    mels = torch.tensor([[[10.0, -50.0], [-75.0, -100.0]]])  # floored: 0, -60, -80, -80; their mean -55
    assert ChunkLevel()(mels).tolist() == [[[55.0, -5.0], [-25.0, -25.0]]]
    assert build_model("tiny", 3, "relative").state_dict().keys() == build_model("tiny", 3).state_dict().keys()
    with pytest.raises(ValueError, match="level 'loud': one of relative, absolute"):
        build_model("tiny", 3, "loud")


def test_the_tempogram_peaks_at_the_beat_of_a_click_track_at_any_level() -> None:
    frontend, net = build_tagger("tiny", 5, 16000, 512, 256, 64, 0.0, 8000.0, "relative", True)
    rng = np.random.default_rng(0)
    click = rng.standard_normal(800).astype("f4") * np.exp(-np.arange(800) / 150).astype("f4")
    for bpm in (70, 120):
        wave = np.zeros(3 * 16000, "f4")
        for start in range(0, len(wave) - 800, int(60 / bpm * 16000)):
            wave[start : start + 800] += click
        with torch.no_grad():
            grams = [net.pulse.tempogram(net.level(frontend(torch.from_numpy(wave * g)[None]))) for g in (1.0, 0.01)]
        per_lag = grams[0].reshape(net.pulse.bands, -1).sum(0)  # the bands' tempograms together
        peak = net.pulse.lags[int(per_lag.argmax())] * 256 / 16000  # seconds per beat
        assert peak == pytest.approx(60 / bpm, rel=0.03)
        torch.testing.assert_close(grams[1], grams[0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_a_tempo_branch_adds_to_every_networks_logits_under_its_own_keys(name: str) -> None:
    spec = SPECS[name]
    frames = int(spec.chunk_seconds * 16000) // 256 + 1
    torch.manual_seed(0)
    plain = build_model(name, 4).eval()
    torch.manual_seed(0)
    with_tempo = build_model(name, 4, tempo_frame_rate=62.5).eval()
    added = set(with_tempo.state_dict()) - set(plain.state_dict())
    assert added and all(k.startswith("pulse.") for k in added)
    mels = torch.randn(2, spec.n_mels, frames)
    with torch.no_grad():
        torch.testing.assert_close(with_tempo(mels) - plain(mels), with_tempo.pulse(mels))
