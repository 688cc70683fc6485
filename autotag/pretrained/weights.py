"""A published state_dict as an autotag checkpoint: its keys mapped onto autotag's own modules.

The files are plain state_dicts of the authors' modules (`spec.*` their mel filterbank,
`spec_bn.*`, `layer1..`, `dense*`). autotag builds the same layers under its own names
(`autotag.models.architectures`), so a table per network renames the keys; the authors'
filterbank is dropped (autotag's front end computes the same one: within 1.3e-5). The
result loads with `strict=True` into a `TaggingNet` built from the catalogue's recipe, so
a missing, extra or misshapen tensor is refused before anything is written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from autotag.errors import AutotagError
from autotag.pretrained.catalogue import Published

#: (pattern of the authors' key, autotag's) per network, tried in order; `spec.*` is dropped.
_KEYS: dict[str, list[tuple[str, str]]] = {
    "fcn": [(r"^spec_bn\.", "spec_bn."), (r"^layer([1-5])\.", "blocks.{0}."), (r"^dense\.", "head.1.")],
    "musicnn": [
        (r"^spec_bn\.", "spec_bn."),
        (r"^layers\.([01])\.", "timbre.{0}."),
        (r"^layers\.([234])\.", "tempo.{0}."),
        (r"^layer([123])\.", "mid.{0}."),
        (r"^dense1\.", "head.0."),
        (r"^bn\.", "head.1."),
        (r"^dense2\.", "head.4."),
    ],
    "crnn": [
        (r"^spec_bn\.", "spec_bn."),
        (r"^layer([1-4])\.", "blocks.{0}."),
        (r"^layer5\.", "gru."),
        (r"^dense\.", "head.1."),
    ],
}
#: How the authors' numbered modules count from autotag's: layer1 is blocks.0, layers.2 is tempo.0.
_OFFSET = {"blocks": 1, "timbre": 0, "tempo": 2, "mid": 1}


class WeightsError(AutotagError):
    """A file that is not the published model it should be; the message says how."""


def hparams(entry: Published) -> dict[str, Any]:
    """The checkpoint's hyper-parameters: the network, the catalogue's tags and the recipe's front end."""
    return {
        "model_name": entry.network,
        "labels": list(entry.tags),
        "sample_rate": 16000,
        "n_fft": 512,
        "hop_length": 256,
        "n_mels": 96,
        "f_min": 0.0,
        "f_max": 8000.0,
        "chunk_seconds": entry.chunk_seconds,
        "level": "absolute",
        "tempo": False,
    }


def renamed(entry: Published, state: dict[str, Any]) -> dict[str, Any]:
    """The authors' tensors under autotag's names (`net.*`), the filterbank dropped.

    Raises:
        WeightsError: a key no table names (not this network's file).
    """
    out, rules = {}, _KEYS[entry.network]
    for key, tensor in state.items():
        if key.startswith("spec."):
            continue
        for pattern, target in rules:
            match = re.match(pattern, key)
            if match:
                numbered = [str(int(g) - _OFFSET[target.split(".")[0]]) for g in match.groups()]
                out["net." + target.format(*numbered) + key[match.end() :]] = tensor
                break
        else:
            raise WeightsError(f"{entry.file} holds {key!r}, which no {entry.network} has: not {entry.name}'s weights")
    return out


def checkpoint(entry: Published, file: Path) -> dict[str, Any]:
    """An autotag checkpoint (hyper-parameters, front end and network state) of the published file.

    Read with `weights_only=True`: the file cannot run code.

    Raises:
        WeightsError: not a state_dict, or one that does not fit the network exactly.
    """
    import torch

    from autotag.serving.tagger import TaggingNet

    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated, foreign or pickled-code file fails in many ways
        raise WeightsError(f"{file} is not a state_dict torch can read safely ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{file} is not a state_dict (a mapping of names to tensors)")
    params = hparams(entry)
    net = TaggingNet(params)
    try:
        net.load_state_dict({**net.frontend.state_dict(prefix="frontend."), **renamed(entry, state)}, strict=True)
    except RuntimeError as exc:  # missing, unexpected or misshapen tensors
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise WeightsError(f"{file} does not fit {entry.name}'s {entry.network}: {first}") from None
    return {"hyper_parameters": params, "state_dict": net.state_dict(), "published": entry.name}
