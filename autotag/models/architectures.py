"""Tagging architectures on log-mel input, and the registry that builds them by name.

Every model maps log-mels (batch, n_mels, frames) to logits (batch, n_tags); the sigmoid
is applied only at prediction time. Layer shapes follow the papers so that published
MagnaTagATune numbers are reproducible; the one liberty is a global max pool at the end,
which equals the papers' flatten for their input size and lets longer inputs through.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import get_args

import torch
from torch import nn

from autotag.audio.logmel import LogMel
from autotag.config import TrainConfig
from autotag.models.specs import SPECS, get_spec

#: How a network hears loudness (the config's `level`): "relative" takes each chunk's
#: log-mels relative to its own level (`ChunkLevel`), "absolute" as the microphone gave them.
LEVELS = ("relative", "absolute")
#: dB below a chunk's loudest mel bin that a relative input keeps (AmplitudeToDB's usual top_db).
LEVEL_RANGE_DB = 80.0


class ChunkLevel(nn.Module):
    """Each chunk's log-mels floored LEVEL_RANGE_DB below its loudest bin, then centred on their mean.

    A gain multiplies the power, which shifts every dB value of a chunk by one amount;
    taking a level of the chunk away removes that shift exactly, so the same clip at -40 dBFS
    and at -1 dBFS gives the network the same input. The floor, set from the loudest bin,
    cuts what lies so far down that the quiet copy would reach the front end's own floor
    (-100 dB) where the loud one does not; the reference taken away is then the mean, not
    the loudest bin: a single loud transient (a drum hit) would move the whole chunk by its
    own level (the quick demo, seed 0: test / unheard ROC-AUC 0.794 / 0.701 against the
    loudest bin, 0.814 / 0.754 against the mean; against the chunk's loudness, the dB of its
    mean power, with the tempo branch, seeds 0-2: 0.807 / 0.743 against 0.794 / 0.758). No
    weights: a checkpoint's state_dict is the same with or without it.
    """

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        floored = (mels - mels.amax(dim=(-2, -1), keepdim=True)).clamp(min=-LEVEL_RANGE_DB)
        return floored - floored.mean(dim=(-2, -1), keepdim=True)


def level_input(level: str) -> nn.Module:
    """The first step of a network that hears loudness as `level` says (one of LEVELS)."""
    if level not in LEVELS:
        raise ValueError(f"level {level!r}: one of {', '.join(LEVELS)}")
    return ChunkLevel() if level == "relative" else nn.Identity()


#: Beat rates the tempo branch looks for, in BPM: slow ballads to fast dance music.
TEMPO_BPM = (40.0, 240.0)
#: Groups of mel bands, low to high, whose onsets the tempo branch follows apart: one. Four (a
#: kick drum, a melody, hi-hats apart) heard tempo better on unseen sounds (quick demo, seeds
#: 0-2, `fast` / `slow` ROC-AUC 0.826 / 0.789 against 0.803 / 0.758) but, with four times the
#: weights, learnt the demo artists' rhythms too: test macro ROC-AUC 0.775 against 0.794,
#: unheard 0.746 against 0.758.
BANDS = 1


class TempoBranch(nn.Module):
    """Tag evidence from how regularly a chunk's onsets recur, added to the network's logits.

    A convolutional stack pooled over time hears textures, not periodicity: the quick demo
    scored `fast` and `slow` at about chance (ROC-AUC 0.52 / 0.44) on clips of another
    soundfont while its instrument tags held up. This branch computes a tempogram: the onset
    strength of each frame (the rise of every mel band since the previous frame, averaged
    over the bands of a group: spectral flux), centred, autocorrelated at every lag of a beat between
    TEMPO_BPM and normalised by its energy (so neither level nor density of notes
    matters), then a small dense network maps it to a logit per tag (Grosche et al. 2010;
    the tempogram input of Schreiber & Mueller 2018's tempo CNN).

    Args:
        frame_rate: Log-mel frames per second (sample rate / hop length).
        hidden: Units of the dense layer between the tempogram and the tags.
        bands: Groups of mel bands with a tempogram each (BANDS).
    """

    def __init__(self, n_tags: int, frame_rate: float, hidden: int = 32, bands: int = BANDS) -> None:
        super().__init__()
        slowest, fastest = TEMPO_BPM
        self.bands = bands
        self.lags = list(
            range(max(1, int(60.0 / fastest * frame_rate)), int(math.ceil(60.0 / slowest * frame_rate)) + 1)
        )
        self.dense = nn.Sequential(nn.Linear(bands * len(self.lags), hidden), nn.ReLU(), nn.Linear(hidden, n_tags))

    def tempogram(self, mels: torch.Tensor) -> torch.Tensor:
        """(batch, bands * lags) the onset strength's autocorrelation per band; a lag longer than the chunk gives 0."""
        rise = torch.relu(mels[..., 1:] - mels[..., :-1])
        flux = torch.stack([part.mean(dim=1) for part in rise.chunk(self.bands, dim=1)], dim=1)  # (batch, bands, t)
        flux = flux - flux.mean(dim=-1, keepdim=True)
        energy = flux.pow(2).sum(dim=-1, keepdim=True) + 1e-6
        gram = torch.stack([(flux[..., :-lag] * flux[..., lag:]).sum(dim=-1) for lag in self.lags], dim=-1) / energy
        return gram.flatten(1)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        return self.dense(self.tempogram(mels))


class ConvBlock(nn.Module):
    """3x3 conv, batch norm, ReLU, max pool (the Conv_2d block of Won et al.)."""

    def __init__(self, c_in: int, c_out: int, pooling: int | tuple[int, int] = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.bn = nn.BatchNorm2d(c_out)
        self.pool = nn.MaxPool2d(pooling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.bn(self.conv(x))))


class ResBlock(nn.Module):
    """Two 3x3 convs with a strided projection shortcut (the Res_2d block of Won et al.)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.project = stride != 1 or c_in != c_out
        if self.project:
            self.conv3 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
            self.bn3 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        shortcut = self.bn3(self.conv3(x)) if self.project else x
        return torch.relu(out + shortcut)


class MelCNN(nn.Module):
    """Input batch norm over the spectrogram, a conv stack, max pool, a head.

    Args:
        blocks: The conv stack; its last block outputs `width` channels.
        head: Maps (batch, width * bands) to logits (batch, n_tags).
        bands: None pools over frequency and time at once, as the papers' deep stacks do
            (their last block sees the whole spectrum). A shallow stack sees a few mel
            bins per unit, and a pool over all frequencies would throw away the register
            that tells a bass line from a flute; with `bands`, the frequency axis is
            pooled to that many bands, each band's channels kept, then pooled over time.
    """

    def __init__(self, blocks: list[nn.Module], head: nn.Module, bands: int | None = None) -> None:
        super().__init__()
        self.level: nn.Module = nn.Identity()  # `build_model` sets the run's (`level_input`)
        self.pulse: TempoBranch | None = None  # and a tempo branch when the run has one
        self.spec_bn = nn.BatchNorm2d(1)
        self.blocks = nn.Sequential(*blocks)
        self.head = head
        self.bands = nn.AdaptiveMaxPool2d((bands, None)) if bands else None

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """Args: mels (batch, n_mels, frames) in dB. Returns: logits (batch, n_tags)."""
        heard = self.level(mels)
        x = self.blocks(self.spec_bn(heard.unsqueeze(1)))
        if self.bands is None:
            logits = self.head(x.amax(dim=(2, 3)))
        else:
            logits = self.head(self.bands(x).flatten(1, 2).amax(dim=2))
        return logits if self.pulse is None else logits + self.pulse(heard)


def _short_chunk_head(width: int, n_tags: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(0.5), nn.Linear(width, n_tags)
    )


def build_tiny(n_tags: int) -> nn.Module:
    """Three small conv blocks, pooled per frequency band; ~30k parameters, for demos and tests.

    Per band rather than global: on the real-instrument demo set (300 clips, two seeds)
    that lifted the quick demo's test ROC-AUC from 0.74 to 0.82 at the same cost.
    """
    blocks = [ConvBlock(1, 16, 2), ConvBlock(16, 32, 2), ConvBlock(32, 64, 2)]
    return MelCNN(blocks, nn.Sequential(nn.Dropout(0.2), nn.Linear(64 * 8, n_tags)), bands=8)


def build_fcn(n_tags: int) -> nn.Module:
    """FCN-5 of Choi et al. 2016 (as re-implemented by Won et al. 2020)."""
    blocks = [
        ConvBlock(1, 64, (2, 4)),
        ConvBlock(64, 128, (2, 4)),
        ConvBlock(128, 128, (2, 4)),
        ConvBlock(128, 128, (3, 5)),
        ConvBlock(128, 64, (4, 4)),
    ]
    return MelCNN(blocks, nn.Sequential(nn.Dropout(0.5), nn.Linear(64, n_tags)))


def build_shortchunk_cnn(n_tags: int) -> nn.Module:
    """Short-chunk CNN of Won et al. 2020: seven conv blocks, 128-256-512 channels."""
    widths = [128, 128, 256, 256, 256, 256, 512]
    blocks = [ConvBlock(c_in, c_out) for c_in, c_out in zip([1, *widths[:-1]], widths)]
    return MelCNN(blocks, _short_chunk_head(512, n_tags))


def build_shortchunk_resnet(n_tags: int) -> nn.Module:
    """Short-chunk ResNet of Won et al. 2020: seven strided residual blocks."""
    widths = [128, 128, 256, 256, 256, 256, 512]
    blocks = [ResBlock(c_in, c_out) for c_in, c_out in zip([1, *widths[:-1]], widths)]
    return MelCNN(blocks, _short_chunk_head(512, n_tags))


class TimbreConv(nn.Module):
    """musicnn's vertical front-end filter: a conv `height` mel bins tall and 7 frames wide,
    batch norm, ReLU, then the maximum over what is left of the frequency axis (Pons et al.):
    a timbre detector wherever in pitch it sits."""

    def __init__(self, channels: int, height: int, width: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, channels, (height, width), padding=(0, width // 2))
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 1, mels, frames) -> (batch, channels, frames)."""
        return torch.relu(self.bn(self.conv(x))).amax(dim=2)


class TempoConv(nn.Module):
    """musicnn's horizontal front-end filter: the mean over all mel bins, then a 1-D conv
    `width` frames long, batch norm, ReLU: patterns in time (onsets, tempo), not in pitch."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, channels, width, padding=width // 2)
        self.bn = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 1, mels, frames) -> (batch, channels, frames)."""
        return torch.relu(self.bn(self.conv(x.mean(dim=2))))


class TimeConv(nn.Module):
    """A 1-D conv over frames with batch norm and ReLU: a block of musicnn's mid-end."""

    def __init__(self, c_in: int, c_out: int, width: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, width, padding=width // 2)
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class Musicnn(nn.Module):
    """musicnn (Pons & Serra 2019) as Won et al. 2020 trained it on 3 s chunks of 96 mels.

    Front end: two timbre filters (0.7 and 0.4 of 96 mel bins tall, 204 channels each) and
    three tempo filters (129, 65 and 33 frames, 51 channels each), concatenated (561).
    Mid-end: three 1-D convs of `width`, the second and third residual; every stage's output
    is kept (561 + 3 x width). Back end: the maximum and the mean over time of all of it, a
    dense layer of `dense` units with batch norm and ReLU, dropout, and the output layer.
    """

    def __init__(self, n_tags: int, width: int = 64, dense: int = 200) -> None:
        super().__init__()
        self.level: nn.Module = nn.Identity()
        self.pulse: TempoBranch | None = None
        self.spec_bn = nn.BatchNorm2d(1)
        self.timbre = nn.ModuleList([TimbreConv(204, int(0.7 * 96)), TimbreConv(204, int(0.4 * 96))])
        self.tempo = nn.ModuleList([TempoConv(51, w) for w in (129, 65, 33)])
        front = 2 * 204 + 3 * 51
        self.mid = nn.ModuleList([TimeConv(front, width), TimeConv(width, width), TimeConv(width, width)])
        self.head = nn.Sequential(
            nn.Linear(2 * (front + 3 * width), dense),
            nn.BatchNorm1d(dense),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(dense, n_tags),
        )

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """Args: mels (batch, n_mels, frames) in dB. Returns: logits (batch, n_tags)."""
        heard = self.level(mels)
        x = self.spec_bn(heard.unsqueeze(1))
        front = torch.cat([f(x) for f in (*self.timbre, *self.tempo)], dim=1)
        first = self.mid[0](front)
        second = self.mid[1](first) + first
        third = self.mid[2](second) + second
        features = torch.cat([front, first, second, third], dim=1)
        logits = self.head(torch.cat([features.amax(dim=2), features.mean(dim=2)], dim=1))
        return logits if self.pulse is None else logits + self.pulse(heard)


class CRNN(nn.Module):
    """CRNN (Choi et al. 2017) as Won et al. 2020 trained it: four conv blocks that pool the
    96 mel bins away, then a two-layer GRU of 32 units over time; its last step is the clip."""

    def __init__(self, n_tags: int) -> None:
        super().__init__()
        self.level: nn.Module = nn.Identity()
        self.pulse: TempoBranch | None = None
        self.spec_bn = nn.BatchNorm2d(1)
        self.blocks = nn.Sequential(
            ConvBlock(1, 64, 2), ConvBlock(64, 128, 3), ConvBlock(128, 128, 4), ConvBlock(128, 128, 4)
        )
        self.gru = nn.GRU(128, 32, num_layers=2, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(32, n_tags))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """Args: mels (batch, n_mels, frames) in dB. Returns: logits (batch, n_tags)."""
        heard = self.level(mels)
        x = self.blocks(self.spec_bn(heard.unsqueeze(1)))  # (batch, 128, 1 band for 96-191 mels, steps)
        steps, _ = self.gru(x.amax(dim=2).transpose(1, 2))  # the max over bands: any n_mels from 96 works
        logits = self.head(steps[:, -1])
        return logits if self.pulse is None else logits + self.pulse(heard)


def build_musicnn(n_tags: int) -> nn.Module:
    """musicnn of Pons & Serra 2019, in the MagnaTagATune and MTG-Jamendo size of Won et al. 2020."""
    return Musicnn(n_tags)


def build_crnn(n_tags: int) -> nn.Module:
    """CRNN of Choi et al. 2017 (as re-implemented by Won et al. 2020)."""
    return CRNN(n_tags)


BUILDERS: dict[str, Callable[[int], nn.Module]] = {
    "tiny": build_tiny,
    "fcn": build_fcn,
    "shortchunk_cnn": build_shortchunk_cnn,
    "shortchunk_resnet": build_shortchunk_resnet,
    "musicnn": build_musicnn,
    "crnn": build_crnn,
}
assert BUILDERS.keys() == SPECS.keys(), "model_specs.SPECS and models.BUILDERS must list the same names"
assert set(LEVELS) == set(get_args(TrainConfig.model_fields["level"].annotation)), "config's level and LEVELS differ"


def build_model(name: str, n_tags: int, level: str = "absolute", tempo_frame_rate: float | None = None) -> nn.Module:
    """Build architecture `name` with `n_tags` outputs, hearing loudness as `level` says, with a
    tempo branch (`TempoBranch`) for log-mels of `tempo_frame_rate` frames per second when given.

    Unknown names list the known ones.
    """
    get_spec(name)
    net = BUILDERS[name](n_tags)
    net.level = level_input(level)
    if tempo_frame_rate is not None:
        net.pulse = TempoBranch(n_tags, tempo_frame_rate)
    return net


def build_tagger(
    model_name: str,
    n_tags: int,
    sample_rate: int,
    n_fft: int,
    hop_length: int,
    n_mels: int,
    f_min: float,
    f_max: float | None,
    level: str,
    tempo: bool,
) -> tuple[LogMel, nn.Module]:
    """The log-mel front end and the network of a tagger, as `frontend` and `net` of a checkpoint.

    Training (`TaggingModule`) and tagging (`predict.TaggingNet`) both build them here, so
    a checkpoint's state_dict always fits the tagging model.
    """
    net = build_model(model_name, n_tags, level, sample_rate / hop_length if tempo else None)
    return LogMel(sample_rate, n_fft, hop_length, n_mels, f_min, f_max), net
