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
