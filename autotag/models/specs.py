"""What each architecture expects of its input, importable without torch.

The config schema and the dashboard read these to fill paper defaults and to explain
invalid combinations, so they must not pay for importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from autotag.text import shown


@dataclass(frozen=True)
class ModelSpec:
    """Input requirements and paper defaults of one architecture.

    Attributes:
        name: Registry key.
        description: One line for `--help` and the dashboard.
        n_mels: Mel bands used in the paper.
        chunk_seconds: Input length used in the paper, in seconds at 16 kHz.
        min_mels: Fewest mel bands the pooling stack accepts.
        min_frames: Fewest STFT frames the pooling stack accepts.
    """

    name: str
    description: str
    n_mels: int
    chunk_seconds: float
    min_mels: int
    min_frames: int


SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "tiny",
            "3-layer CNN for demos and tests; trains in seconds on a CPU",
            n_mels=64,
            chunk_seconds=3.0,
            min_mels=8,
            min_frames=8,
        ),
        ModelSpec(
            "fcn",
            "Fully convolutional network (Choi et al. 2016), 29.1 s input, 96 mels",
            n_mels=96,
            chunk_seconds=29.1,
            min_mels=96,
            min_frames=1280,
        ),
        ModelSpec(
            "shortchunk_cnn",
            "Short-chunk CNN (Won et al. 2020), 3.69 s input, 128 mels",
            n_mels=128,
            chunk_seconds=59049 / 16000,
            min_mels=128,
            min_frames=128,
        ),
        ModelSpec(
            "shortchunk_resnet",
            "Short-chunk ResNet (Won et al. 2020), 3.69 s input, 128 mels",
            n_mels=128,
            chunk_seconds=59049 / 16000,
            min_mels=128,
            min_frames=128,
        ),
        ModelSpec(
            "musicnn",
            "musicnn (Pons & Serra 2019): timbre and tempo filters, 3 s input, 96 mels",
            n_mels=96,
            chunk_seconds=3.0,
            min_mels=67,  # its tallest timbre filter spans 67 mel bins
            min_frames=1,
        ),
        ModelSpec(
            "crnn",
            "Convolutional recurrent network (Choi et al. 2017), 29.1 s input, 96 mels",
            n_mels=96,
            chunk_seconds=29.1,
            min_mels=96,
            min_frames=96,
        ),
    )
}


def get_spec(name: str) -> ModelSpec:
    """Return the spec of `name`, or raise a ValueError that lists the known names."""
    try:
        return SPECS[name]
    except KeyError:
        known = ", ".join(sorted(SPECS))
        raise ValueError(f"unknown model {shown(name)}; known models: {known}") from None
