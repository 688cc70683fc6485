"""The one typed config schema of a training run.

Defaults, allowed ranges and choices, and validation live here only: the CLI builds its
options from these fields, the dashboard's sliders read their ranges and its selectboxes
their choices, and `config.yaml` in every run folder is this model dumped with every value
explicit, so loading it reproduces the run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo

from autotag.errors import AutotagError
from autotag.models.specs import SPECS, get_spec
from autotag.paths import absolute
from autotag.text import one_line, shorten, shown

DataFormat = Literal["auto", "csv", "mtat", "jamendo"]
JamendoSubset = Literal["top50tags", "all", "genre", "instrument", "moodtheme"]


#: How the `data` of a run imported from the published taggers (`autotag.pretrained`) starts:
#: `published:mtat-fcn` was trained by its authors, on data that is not in a folder here.
PUBLISHED_DATA = "published:"


class ConfigError(AutotagError):
    """A config value is invalid; the message names the field and what is allowed."""


class TrainConfig(BaseModel):
    """Everything that decides what a training run does.

    Feature settings left empty (`n_mels`, `chunk_seconds`) take the chosen model's paper
    values when the config is validated, so a saved config never depends on defaults.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # Data
    data: str = Field(description="Data set folder (plain CSV folder, MagnaTagATune or MTG-Jamendo)")
    format: DataFormat = Field("auto", description="Data set layout; auto detects it")
    top_n: int = Field(50, ge=2, le=1000, description="Keep the N most frequent tags (MTAT, Jamendo)")
    jamendo_subset: JamendoSubset = Field("top50tags", description="MTG-Jamendo tag subset")
    split_index: int = Field(0, ge=0, le=4, description="MTG-Jamendo split-K folder to use")
    audio_root: str | None = Field(None, description="Audio folder, when not found next to the metadata")

    # Model and features
    # A str checked against SPECS (not a Literal), so an unknown model's error lists the known
    # ones; `enum` states the same choices for `field_choices` and the JSON schema.
    model: str = Field(
        "shortchunk_cnn", description="Architecture: " + ", ".join(SPECS), json_schema_extra={"enum": list(SPECS)}
    )
    sample_rate: int = Field(16000, ge=8000, le=48000, description="Model sample rate in Hz")
    n_fft: int = Field(512, ge=64, le=8192, description="STFT size in samples")
    hop_length: int = Field(256, ge=16, le=4096, description="STFT hop in samples")
    n_mels: int | None = Field(None, ge=8, le=256, description="Mel bands; empty = the model's paper value")
    f_min: float = Field(0.0, ge=0.0, le=2000.0, description="Lowest mel frequency in Hz")
    f_max: float | None = Field(None, ge=1000.0, le=24000.0, description="Highest mel frequency; empty = Nyquist")
    chunk_seconds: float | None = Field(
        None, ge=0.5, le=60.0, description="Training chunk length in s; empty = the model's paper value"
    )
    level: Literal["relative", "absolute"] = Field(
        "relative",
        description="How the network hears loudness: relative = each chunk against its own level, so a "
        "quiet and a loud copy of a clip get the same tags; absolute = as recorded (the published models' recipe)",
    )
    tempo: bool | None = Field(
        None,
        description="A tempo branch (how regularly onsets recur) that adds to every tag's score; "
        "empty = on, except in a linear probe, which trains the output layer alone",
    )
    eval_chunks: int = Field(16, ge=1, le=256, description="Most chunks per clip scored in validation and test")
    # 4, not the papers' 1: on the demo set it reaches a higher validation ROC-AUC (benchmarks.schedule),
    # and each epoch's validation pass costs a quarter as much per training chunk.
    chunks_per_clip: int = Field(4, ge=1, le=64, description="Random training chunks drawn from each clip per epoch")

    # Optimisation
    lr: float = Field(1e-3, gt=0.0, le=1.0, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0.0, le=0.1, description="Adam weight decay")
    batch_size: int = Field(16, ge=1, le=1024, description="Chunks per training batch")
    max_epochs: int = Field(100, ge=1, le=1000, description="Upper bound on epochs")
    patience: int = Field(10, ge=1, le=100, description="Epochs without val_loss improvement before stopping")
    seed: int = Field(42, ge=0, le=2**31 - 1, description="Random seed for splits, chunks and weights")
    num_workers: int = Field(0, ge=0, le=64, description="DataLoader worker processes")

    # Starting from an earlier run (autotag.training.finetune)
    init_from: str | None = Field(
        None, description="Run folder whose best checkpoint starts this run (same model); empty = random weights"
    )
    freeze_epochs: int = Field(
        0, ge=0, le=1000, description="Epochs that train only the output layer of a run started from another"
    )
    transfer: Literal["fine-tune", "linear-probe"] = Field(
        "fine-tune",
        description="How a run started from another learns: fine-tune trains every layer; linear-probe only "
        "the output layer, on embeddings of the frozen network computed once per clip",
    )
    backbone_lr_factor: float = Field(
        1.0, gt=0.0, le=1.0, description="Learning rate of all but the output layer as a fraction of lr, in fine-tuning"
    )
    max_minutes: float | None = Field(
        None,
        ge=0.05,
        le=100000.0,
        description="Time budget of training in minutes, then the best model is tested; empty = none",
    )

    # Augmentation of training batches (autotag.training.augment); 0 switches one off
    freq_mask: int = Field(0, ge=0, le=64, description="SpecAugment: widest band of mel bins masked; 0 = off")
    time_mask: int = Field(0, ge=0, le=400, description="SpecAugment: widest run of frames masked; 0 = off")
    gain_db: float = Field(0.0, ge=0.0, le=24.0, description="Random gain of up to +/- this many dB; 0 = off")
    noise_snr_db: float = Field(
        0.0, ge=0.0, le=60.0, description="Noise at an SNR from this to 20 dB above it, in dB; 0 = off"
    )
    # The one augmentation on by default: the best of the on/off ablation on both the demo set's
    # test split and unheard sounds (README, benchmarks.recipes).
    mixup: float = Field(0.2, ge=0.0, le=1.0, description="Mixup: alpha of the Beta mixing weight; 0 = off")

    # Hardware
    accelerator: Literal["auto", "cpu", "gpu"] = Field("auto", description="auto uses a GPU when there is one")
    devices: int = Field(1, ge=1, le=64, description="Devices (GPUs, or CPU processes) per node; one process each")
    num_nodes: int = Field(1, ge=1, le=1024, description="Machines of a multi-node run (started by SLURM or torchrun)")
    strategy: Literal["auto", "ddp"] = Field(
        "auto", description="auto: one process, or DDP when devices x num_nodes > 1; ddp: always DDP"
    )
    precision: Literal["32-true", "16-mixed", "bf16-mixed"] = Field("32-true", description="Numeric precision")

    @field_validator("data", "audio_root", "init_from")
    @classmethod
    def _absolute_folder(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Stored absolute: a run's trainer reads its config.yaml from another working folder.
        A published model's `data` names its authors' data set (PUBLISHED_DATA), no folder."""
        if value is None:
            return None
        if not value.strip():
            raise ValueError("give a folder")
        if info.field_name == "data" and value.startswith(PUBLISHED_DATA):
            return value
        return str(absolute(value))

    @model_validator(mode="after")
    def _resolve_and_check(self) -> TrainConfig:
        spec = get_spec(self.model)
        # Fill paper values without re-triggering validation on assignment.
        if self.n_mels is None:
            object.__setattr__(self, "n_mels", spec.n_mels)
        if self.chunk_seconds is None:
            object.__setattr__(self, "chunk_seconds", round(spec.chunk_seconds, 6))
        nyquist = self.sample_rate / 2
        if self.f_max is not None and self.f_max > nyquist:
            raise ValueError(f"f_max {self.f_max} Hz is above the Nyquist frequency {nyquist} Hz")
        if self.f_min >= (self.f_max or nyquist):
            raise ValueError(f"f_min {self.f_min} Hz must be below f_max {self.f_max or nyquist} Hz")
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length {self.hop_length} must not exceed n_fft {self.n_fft}")
        if self.n_mels < spec.min_mels:
            raise ValueError(f"model {self.model} needs n_mels >= {spec.min_mels}, got {self.n_mels}")
        if self.init_from is None:
            for name, plain in (("freeze_epochs", 0), ("transfer", "fine-tune"), ("backbone_lr_factor", 1.0)):
                if getattr(self, name) != plain:
                    raise ValueError(f"{name} needs init_from: it is about the weights of an earlier run")
        if self.transfer == "linear-probe" and (self.freeze_epochs or self.backbone_lr_factor != 1.0):
            raise ValueError("a linear probe never trains the backbone: leave freeze_epochs and backbone_lr_factor")
        if self.tempo is None:
            object.__setattr__(self, "tempo", self.transfer != "linear-probe")
        if self.tempo and self.transfer == "linear-probe":
            raise ValueError("a linear probe trains the output layer alone, not a tempo branch: leave tempo off")
        if self.freq_mask > self.n_mels // 2:
            raise ValueError(f"freq_mask {self.freq_mask} would mask more than half of the {self.n_mels} mel bands")
        if self.time_mask > self.chunk_frames // 2:
            raise ValueError(
                f"time_mask {self.time_mask} would mask more than half of a chunk's {self.chunk_frames} frames"
            )
        if self.chunk_frames < spec.min_frames:
            need = spec.min_frames * self.frame_seconds
            raise ValueError(
                f"model {self.model} needs chunks of at least {need:.2f} s "
                f"({spec.min_frames} frames), got {self.chunk_seconds} s"
            )
        return self

    @property
    def chunk_samples(self) -> int:
        """Training chunk length in samples at the model rate."""
        return int(round(float(self.chunk_seconds) * self.sample_rate))

    @property
    def chunk_frames(self) -> int:
        """Training chunk length in log-mel frames (centred STFT)."""
        return self.chunk_samples // self.hop_length + 1

    @property
    def frame_seconds(self) -> float:
        """Seconds between log-mel frames (the hop at the model rate), for time axes."""
        return self.hop_length / self.sample_rate

    def feature_settings(self) -> dict[str, Any]:
        """The values that decide the log-mel features, keying the feature cache."""
        return {
            "sample_rate": self.sample_rate,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "n_mels": self.n_mels,
            "f_min": self.f_min,
            "f_max": self.f_max if self.f_max is not None else self.sample_rate / 2,
        }

    def augment_settings(self) -> dict[str, Any]:
        """The augmentation fields, as `autotag.training.augment.AugmentSettings` takes them."""
        return {k: getattr(self, k) for k in ("freq_mask", "time_mask", "gain_db", "noise_snr_db", "mixup")}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


#: The "quick demo": `tiny` on the built-in demo set in under a minute on a 2-core CPU
#: (benchmarks.quick_demo); lr 3e-3 learns the real-instrument set faster than 1e-3 in 20 epochs.
QUICK_DEMO: dict[str, Any] = {"model": "tiny", "max_epochs": 20, "patience": 8, "batch_size": 16, "lr": 3e-3}


def make_config(**values: Any) -> TrainConfig:
    """Build a validated config, turning pydantic's errors into one readable ConfigError."""
    return validate_config(values)


def validate_config(values: dict[Any, Any]) -> TrainConfig:
    """`make_config` for a mapping read from a file, whose keys may be anything (`1: x`, `null: y`)."""
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc)) from None


#: The largest YAML file autotag reads: a run's whole config.yaml is about 1.5 KB, a sweep.yaml less.
MAX_YAML_BYTES = 256 * 1024
#: The most nodes a YAML document may stand for, each alias counted as the whole of what it repeats.
#: A config has about 50; nine nested levels of nine aliases (a "billion laughs" of 356 bytes)
#: stand for 387 million, which anything that walks the result (validation, an error message) expands.
MAX_YAML_NODES = 10_000


#: The deepest nesting of lists and mappings read: a config is flat, a sweep.yaml two levels deep.
#: PyYAML's scanner slows down with nesting (2 s at 1,000 levels) and its composer recurses.
MAX_YAML_DEPTH = 32


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing nesting deeper than MAX_YAML_DEPTH as soon as the scanner meets it."""

    def fetch_flow_collection_start(self, token_class: type) -> None:
        if self.flow_level >= MAX_YAML_DEPTH:
            raise _TooDeep
        super().fetch_flow_collection_start(token_class)

    def add_indent(self, column: int) -> bool:
        if len(self.indents) >= MAX_YAML_DEPTH:
            raise _TooDeep
        return super().add_indent(column)


class _TooDeep(Exception):
    """Raised inside the scanner; turned into a ConfigError that names the file."""


def parse_yaml(text: str, what: str) -> Any:
    """`yaml.safe_load` of a file autotag reads, bounded in size, nesting and alias expansion.

    Args:
        what: The file as an error message names it.

    Raises:
        ConfigError: too long, nested too deep, an alias bomb or a recursive alias, or not YAML.
    """
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{what} is {len(text):,} characters; a config file has at most {MAX_YAML_BYTES:,}")
    try:
        loader = _BoundedLoader(text)  # the reader refuses control characters at once
        try:
            node = loader.get_single_node()
            if node is not None and _expanded_size(node, {}, set(), what) > MAX_YAML_NODES:
                raise ConfigError(
                    f"{what} expands to more than {MAX_YAML_NODES:,} values through its aliases (&/*); "
                    "a config has about 50"
                )
            return None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except ConfigError:
        raise
    except _TooDeep:
        raise ConfigError(f"{what} nests lists or mappings more than {MAX_YAML_DEPTH} deep; a config is flat") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is not valid YAML: {one_line(str(exc), 200)}") from None
    except ValueError as exc:  # a value PyYAML cannot build, e.g. an integer of 5,000 digits
        raise ConfigError(f"{what} holds a value that cannot be read: {one_line(str(exc), 200)}") from None


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int], what: str) -> int:
    """How many nodes `node` stands for once every alias is expanded, without expanding any.

    An alias is the same node object reached twice, so memoising by identity counts a
    document of n distinct nodes in O(n) even when it stands for billions.

    Raises:
        ConfigError: an alias inside the node it names (a structure that contains itself).
    """
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise ConfigError(f"{what} has an alias (*) inside the node it names; a config cannot contain itself")
    open_nodes.add(key)
    if isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = node.value
    else:
        children = []
    total = 1
    for child in children:
        total += _expanded_size(child, sizes, open_nodes, what)
        if total > MAX_YAML_NODES:
            break  # big enough to refuse; the rest need not be counted
    open_nodes.discard(key)
    sizes[key] = total
    return total


def read_yaml_file(path: Path, what: str) -> Any:
    """`parse_yaml` of a file, refusing what is not a readable UTF-8 text file of at most `MAX_YAML_BYTES`.

    Raises:
        ConfigError: unreadable, too large, binary or not UTF-8, or not bounded YAML.
    """
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror or exc}") from None
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"{what} is larger than {MAX_YAML_BYTES // 1024} KB; a config file is a few KB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} is not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})") from None
    if "\x00" in text:
        raise ConfigError(f"{what} holds NUL bytes: it is not a text file")
    return parse_yaml(text, what)


def load_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """Read a `config.yaml`, apply non-None overrides, and validate.

    A file that lacks a newer field means what it meant when it was written (`OLDER_RUNS`):
    resuming or reproducing an older run trains the model it trained.

    Raises:
        ConfigError: the file cannot be read, is not bounded YAML, or the config is invalid.
    """
    path = Path(path)
    values = read_yaml_file(path, f"config {path}")
    if not isinstance(values, dict):
        raise ConfigError(f"config {path} must be a mapping of field: value")
    values = {**OLDER_RUNS, **values, **{k: v for k, v in overrides.items() if v is not None}}
    return validate_config(values)


def save_config(config: TrainConfig, path: Path, exclusive: bool = False) -> None:
    """Write `config` as YAML.

    Args:
        exclusive: Create the file, failing with FileExistsError when it exists: the atomic
            claim of a run folder (`autotag.store.run_folder.create_run`).
    """
    with path.open("x" if exclusive else "w", encoding="utf-8") as fh:
        fh.write(config.to_yaml())


def format_errors(exc: ValidationError) -> str:
    """One line per bad field (`error_line`), at most 20."""
    lines = [error_line(err) for err in exc.errors()[:20]]
    more = exc.error_count() - len(lines)
    if more > 0:
        lines.append(f"... and {more} more")
    return "invalid config:\n  " + "\n  ".join(lines)


def error_line(err: Any) -> str:
    """One pydantic error in a line: the field, what is allowed, and what was given (a short prefix of it)."""
    field = ".".join(str(p) for p in err["loc"]) or "config"
    given = err.get("input")
    quoted = "" if err["type"] == "missing" or isinstance(given, dict) else f" (got {shown(given)})"
    return f"{shorten(field)}: {shorten(err['msg'].removeprefix('Value error, '), 200)}{quoted}"


def log_stops(lo: float, hi: float) -> list[float]:
    """1, 2, 3 and 5 times each power of ten from `lo` to `hi`: the stops of a log-scale slider
    (the learning rate's), written as decimal literals so that 3e-05 is 3e-05, not 3 * 1e-05."""
    stops = []
    for exponent in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for mantissa in (1, 2, 3, 5):
            value = float(f"{mantissa}e{exponent}")
            if lo <= value <= hi:
                stops.append(value)
    return stops


def field_range(name: str) -> tuple[float | None, float | None]:
    """(lower, upper) bounds of a numeric field, for sliders and help texts."""
    lo = hi = None
    for meta in TrainConfig.model_fields[name].metadata:
        lo = getattr(meta, "ge", None) if getattr(meta, "ge", None) is not None else lo
        lo = getattr(meta, "gt", None) if getattr(meta, "gt", None) is not None else lo
        hi = getattr(meta, "le", None) if getattr(meta, "le", None) is not None else hi
    return lo, hi


def _choices(field: FieldInfo) -> list[Any] | None:
    """A field's fixed set of values: its Literal's, or the `enum` it declares; None if open."""
    if get_origin(field.annotation) is Literal:
        return list(get_args(field.annotation))
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "enum" in extra:
        return list(extra["enum"])
    return None


def field_choices(name: str) -> list[Any]:
    """The allowed values of a choice field, in schema order, for selectboxes and radios.

    Read from the schema, so a widget can offer neither less nor more than validation accepts.

    Raises:
        ValueError: `name` is no config field, or a field without a fixed set of values.
    """
    fields = TrainConfig.model_fields
    if name not in fields:
        raise ValueError(f"unknown config field {name!r}; fields: {', '.join(fields)}")
    choices = _choices(fields[name])
    if choices is None:
        with_choices = [n for n, f in fields.items() if _choices(f) is not None]
        raise ValueError(f"config field {name!r} has no fixed choices; fields with choices: {', '.join(with_choices)}")
    return choices


#: A checkpoint's model and feature hyper-parameters (`TaggingModule`'s arguments), and the
#: config field each one is: all but `model_name` keep their field's name.
CHECKPOINT_FIELDS = {
    "model_name": "model",
    **{
        k: k
        for k in ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max", "chunk_seconds", "level", "tempo")
    },
}
#: What a run's config.yaml or checkpoint that lacks a newer field meant when it was written:
#: a run from before `level` existed heard loudness as recorded, and had no tempo branch.
OLDER_RUNS: dict[str, Any] = {"level": "absolute", "tempo": False}
#: Longest tag name a checkpoint may carry (MagnaTagATune's and MTG-Jamendo's are under 40).
MAX_TAG_CHARS = 200
#: Most tags a model may have: a folksonomy (a CSV data set keeps every tag it holds) can have
#: thousands; an output layer of 10,000 is 5 M weights on the largest network, not gigabytes.
MAX_LABELS = 10_000


def checked_checkpoint_settings(hparams: object) -> dict[str, Any]:
    """A checkpoint's model and feature settings and labels, validated by this schema.

    A checkpoint rebuilds its front end and network from its own numbers before any weight
    is read, so a number no config could hold (chunk_seconds=1e6, n_mels=10**6) would be
    built at whatever size it says. The values go through `TrainConfig` itself, its ranges
    and cross-field checks, and the labels must be what a data set could give
    (`checked_labels`).

    Returns:
        The settings under the checkpoint's names, as validated (e.g. ints for int fields), and "labels".

    Raises:
        ConfigError: the first problems, on one line.
    """
    if not isinstance(hparams, dict):
        raise ConfigError(f"hyper-parameters are a {type(hparams).__name__}, not a mapping")
    hparams = {**OLDER_RUNS, **hparams}
    missing = [k for k in (*CHECKPOINT_FIELDS, "labels") if k not in hparams]
    if missing:
        raise ConfigError(f"hyper-parameters lack {', '.join(missing)}")
    labels = checked_labels(hparams["labels"])
    try:
        config = TrainConfig(data=".", **{field: hparams[k] for k, field in CHECKPOINT_FIELDS.items()})
    except ValidationError as exc:
        raise ConfigError("; ".join(error_line(e) for e in exc.errors()[:3])) from None
    return {**{k: getattr(config, field) for k, field in CHECKPOINT_FIELDS.items()}, "labels": labels}


def checked_labels(labels: object) -> list[str]:
    """`labels` if a model may carry them: a data set's tags (`autotag.data.checks`) and a
    checkpoint's follow one rule, so a run never trains a model whose checkpoints are refused.

    Raises:
        ConfigError: not a list of 1 to MAX_LABELS distinct tag names of 1 to MAX_TAG_CHARS
            characters.
    """
    if not isinstance(labels, list) or not labels:
        raise ConfigError("labels: not a list of tag names")
    if len(labels) > MAX_LABELS:
        raise ConfigError(f"labels: {len(labels)} tags; at most {MAX_LABELS:,}")
    if not all(isinstance(t, str) and 0 < len(t) <= MAX_TAG_CHARS for t in labels):
        raise ConfigError(f"labels: each must be a tag name of 1 to {MAX_TAG_CHARS} characters")
    if len(set(labels)) != len(labels):
        raise ConfigError("labels: a tag name is repeated")
    return list(labels)
