"""The tagging-time model: the same function as the trained one, built without Lightning."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import torch
from torch import nn

from autotag.models.architectures import build_model
from autotag.models.specs import SPECS
from autotag.serving.tagger import _HPARAMS, _TRAINING_ONLY, inference_net


def _with_trained_statistics(net: nn.Module) -> nn.Module:
    """Batch norms with the non-trivial statistics and affine terms a trained model has."""
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.5, generator=g)
            m.running_var.uniform_(0.2, 3.0, generator=g)
            m.weight.data.normal_(0, 1, generator=g)  # negative scales too
            m.bias.data.normal_(0, 0.5, generator=g)
    return net.eval()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_inference_net_computes_the_same_logits(name: str) -> None:
    spec = SPECS[name]
    net = _with_trained_statistics(build_model(name, 20))
    mels = torch.randn(3, spec.n_mels, max(spec.min_frames, 150), generator=torch.Generator().manual_seed(1)) * 10
    fast = inference_net(net)
    with torch.inference_mode():
        expected, got = net(mels), fast(mels)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    kept = [n for n, m in fast.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(n == "spec_bn" or n.startswith("head.") for n in kept), kept  # every conv's batch norm folded in
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(net.parameters(), fast.parameters()))  # a copy


def test_tagging_net_knows_every_hyper_parameter_of_the_training_module() -> None:
    """`TaggingNet` rebuilds what `TaggingModule.__init__` builds: a new argument there must be
    handled in autotag/serving/tagger.py too (or listed there as not affecting the network)."""
    from autotag.training.module import TaggingModule

    args = set(inspect.signature(TaggingModule.__init__).parameters) - {"self"}
    assert args == set(_HPARAMS) | _TRAINING_ONLY


@pytest.mark.slow
def test_tagging_does_not_import_lightning(trained_run) -> None:  # noqa: ANN001 - path fixture
    code = (
        "import sys; from autotag.serving.tagger import Tagger; import numpy as np; "
        f"Tagger.load({str(trained_run)!r}).predict(np.zeros(16000, np.float32)); "
        "print(sorted(m for m in ('lightning', 'pytorch_lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
