import pytest
import torch

from autotag.models.architectures import build_model
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
