"""A sweep's search space, written as the command line and the Sweep page give it.

One entry per searched config field, `FIELD=SPEC`:
- `lo:hi` or `lo:hi:log`: a number between lo and hi (an int or a float, as the schema types
  the field), on a log scale with `:log`;
- `a,b,c`: one of these values.
A trailing `@OTHER=v1,v2` searches the field only in trials whose OTHER (a searched choice
or a fixed value) is one of v1, v2; other trials keep the field's fixed or default value.
That is the conditional space W&B's users ask for (lr ranges per model, say), and Optuna's
define-by-run sampling takes it as it is.

Every value is checked against the schema (`autotag.config.TrainConfig`) when the space is
read, so a range outside what a field allows fails before any trial starts, in one message.
Values that are each allowed may still not go together (hop_length above n_fft): a new
sweep's combinations are checked too (`check_space`), so a space without a valid config
is refused before anything is written, instead of failing trial after trial.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import TypeAdapter, ValidationError

from autotag.config import ConfigError, TrainConfig, field_range, make_config

if TYPE_CHECKING:
    import optuna

#: Fields a trial cannot vary: where the data is, and what every trial shares by definition.
NOT_SEARCHABLE = frozenset({"data", "audio_root", "init_from", "num_nodes"})
#: Most values an integer range may have to be searched by grid.
GRID_MAX = 1000
#: Corners of a new sweep's space (each range's ends crossed with each choice; a larger cross
#: product is sampled) and random draws checked against the schema: ~50 us each, ~40 ms in all.
CHECK_CORNERS = 512
CHECK_DRAWS = 300


class SpaceError(ConfigError):
    """A search-space entry the schema or the syntax does not allow; the message says which and why."""


@dataclass(frozen=True)
class Param:
    """One searched field: a number range, or a list of choices, maybe only under a condition."""

    field: str
    kind: Literal["int", "float", "choice"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    when: tuple[str, tuple[Any, ...]] | None = None  # (other field, the values it must have)

    def applies(self, values: dict[str, Any]) -> bool:
        """Whether this trial searches the field, given the values chosen so far."""
        return self.when is None or values.get(self.when[0]) in self.when[1]

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.field, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.field, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.field, float(self.low), float(self.high), log=self.log)

    def grid(self) -> list[Any]:
        """Every value, for a grid search."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int" and not self.log and self.high - self.low < GRID_MAX:
            return list(range(int(self.low), int(self.high) + 1))
        raise SpaceError(
            f"{self.text}: a grid needs listed values (e.g. {self.field}=a,b,c); "
            "use --sampler tpe or random for a range"
        )

    @property
    def text(self) -> str:
        """The entry as a user writes it (sweep.yaml keeps these)."""
        if self.kind == "choice":
            spec = ",".join(_show(c) for c in self.choices)
        else:
            spec = f"{_show(self.low)}:{_show(self.high)}" + (":log" if self.log else "")
        cond = f"@{self.when[0]}={','.join(_show(v) for v in self.when[1])}" if self.when else ""
        return f"{self.field}={spec}{cond}"


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _base_type(annotation: Any) -> Any:
    """int, float, bool, str or a Literal, without Optional's None."""
    if get_origin(annotation) is Union or type(annotation).__name__ == "UnionType":
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _adapter(field: str) -> TypeAdapter[Any]:
    """Validates one field's values alone: its type with its bounds."""
    info = TrainConfig.model_fields[field]
    return TypeAdapter(Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation)


def _value(field: str, text: str, entry: str) -> Any:
    """`text` as a value of `field`, checked by the schema's type and bounds."""
    if text == "":
        raise SpaceError(f"{entry}: an empty value")
    try:
        value = _adapter(field).validate_python(text)
    except ValidationError as exc:
        lo, hi = field_range(field)
        bounds = f" (allowed: {lo} .. {hi})" if lo is not None or hi is not None else ""
        raise SpaceError(f"{entry}: {text!r} is not a valid {field}: {exc.errors()[0]['msg']}{bounds}") from None
    if field == "model":  # a str checked against SPECS by the model validator, not by its type
        from autotag.models.specs import SPECS

        if value not in SPECS:
            raise SpaceError(f"{entry}: unknown model {value!r}; models: {', '.join(SPECS)}")
    return value


def parse_param(entry: str) -> Param:
    """One `FIELD=SPEC[@OTHER=v1,v2]` entry.

    Raises:
        SpaceError: unknown or unsearchable field, bad syntax, a value outside the schema,
            lo not below hi, an empty or repeated choice, or a log range from 0 or below.
    """
    field, sep, rest = entry.partition("=")
    field = field.strip().replace("-", "_")
    if not sep or not field:
        raise SpaceError(f"{entry!r}: a search-space entry is FIELD=lo:hi, FIELD=lo:hi:log or FIELD=a,b,c")
    if field not in TrainConfig.model_fields:
        raise SpaceError(f"{entry}: no config field {field!r}; fields: {', '.join(TrainConfig.model_fields)}")
    if field in NOT_SEARCHABLE:
        option = field.replace("_", "-")
        raise SpaceError(f"{entry}: {field} is the same for every trial of a sweep; give it as --{option}")
    spec, at, cond = rest.partition("@")
    when = _condition(cond, entry) if at else None
    if when is not None and when[0] == field:
        raise SpaceError(f"{entry}: a field cannot depend on itself")
    if ":" in spec:
        return _range(field, spec, entry, when)
    values = [_value(field, v.strip(), entry) for v in spec.split(",")]
    repeated = {v for v in values if values.count(v) > 1}
    if repeated:
        raise SpaceError(f"{entry}: {', '.join(map(str, sorted(repeated, key=str)))} listed twice")
    if len(values) < 2:
        raise SpaceError(f"{entry}: one value is not a search; give it as --{field.replace('_', '-')} {spec}")
    return Param(field, "choice", choices=tuple(values), when=when)


def _condition(text: str, entry: str) -> tuple[str, tuple[Any, ...]]:
    other, sep, values = text.partition("=")
    other = other.strip().replace("-", "_")
    if not sep or other not in TrainConfig.model_fields:
        raise SpaceError(f"{entry}: the condition after @ is OTHER_FIELD=v1,v2 (got {text!r})")
    return other, tuple(_value(other, v.strip(), entry) for v in values.split(","))


def _range(field: str, spec: str, entry: str, when: tuple[str, tuple[Any, ...]] | None) -> Param:
    parts = spec.split(":")
    log = len(parts) == 3 and parts[2].strip() == "log"
    if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
        raise SpaceError(f"{entry}: a range is lo:hi or lo:hi:log")
    kind = _base_type(TrainConfig.model_fields[field].annotation)
    if kind not in (int, float):
        raise SpaceError(f"{entry}: {field} is not a number; list its values instead (e.g. {field}=a,b)")
    low, high = (_value(field, p.strip(), entry) for p in parts[:2])
    if not low < high:
        raise SpaceError(f"{entry}: lo must be below hi (a fixed value is --{field.replace('_', '-')} VALUE)")
    if log and low <= 0:
        raise SpaceError(f"{entry}: a log range must start above 0")
    return Param(field, "int" if kind is int else "float", low=low, high=high, log=log, when=when)


@dataclass(frozen=True)
class Space:
    """The searched fields, parents before the fields that depend on them."""

    params: tuple[Param, ...]
    #: Fields that conditions name and the space does not search, with their fixed (or default)
    #: values: a condition on one of them holds in every trial or, refused when parsed, in none.
    given: tuple[tuple[str, Any], ...] = ()

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """This trial's values of the fields it searches (conditions decided in order)."""
        known, values = dict(self.given), {}
        for param in self.params:
            if param.applies(known):
                known[param.field] = values[param.field] = param.suggest(trial)
        return values

    def grid(self) -> dict[str, list[Any]]:
        if any(p.when for p in self.params):
            raise SpaceError("a grid search cannot leave fields out of some trials; use --sampler tpe or random")
        return {p.field: p.grid() for p in self.params}

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.params]


def parse_space(entries: list[str], fixed: dict[str, Any]) -> Space:
    """The space of `entries`, checked against each other and against the fixed fields.

    Raises:
        SpaceError: an entry is bad, no field is searched, a field is searched twice or
            also fixed, or a condition names a field that is neither searched as a choice
            nor fixed (or is fixed at a value that never meets it).
    """
    if not entries:
        raise SpaceError("a sweep needs at least one searched field (--space FIELD=lo:hi or FIELD=a,b)")
    params = [parse_param(e) for e in entries]
    seen: dict[str, Param] = {}
    for param in params:
        if param.field in seen:
            raise SpaceError(f"{param.field} is searched twice ({seen[param.field].text} and {param.text})")
        if param.field in fixed:
            raise SpaceError(f"{param.field} is both fixed (--{param.field.replace('_', '-')}) and searched; give one")
        seen[param.field] = param
    ordered: list[Param] = []
    for param in params:
        ordered += _with_parents(param, seen, fixed, ordered, [])
    named = dict.fromkeys(p.when[0] for p in params if p.when and p.when[0] not in seen)
    given = tuple((f, fixed[f] if f in fixed else TrainConfig.model_fields[f].default) for f in named)
    return Space(tuple(dict.fromkeys(ordered)), given)


def _with_parents(
    param: Param, searched: dict[str, Param], fixed: dict[str, Any], done: list[Param], path: list[str]
) -> list[Param]:
    if param in done:
        return []
    if param.when is None:
        return [param]
    other, values = param.when
    if other in path:
        raise SpaceError(f"{param.text}: its condition goes round in a circle ({' -> '.join([*path, other])})")
    if other in searched:
        parent = searched[other]
        if parent.kind != "choice":
            raise SpaceError(f"{param.text}: a condition needs {other} searched as choices (e.g. {other}=a,b)")
        missing = [v for v in values if v not in parent.choices]
        if missing:
            raise SpaceError(f"{param.text}: {other} is never {', '.join(map(str, missing))} in {parent.text}")
        return [*_with_parents(parent, searched, fixed, done, [*path, param.field]), param]
    if other not in fixed:
        default = TrainConfig.model_fields[other].default
        fixed_value, how = default, "its default"
    else:
        fixed_value, how = fixed[other], "fixed"
    if fixed_value not in values:
        raise SpaceError(f"{param.text}: {other} is {how} {fixed_value!r}, so this field would never be searched")
    return [param]


def parse_point(text: str, space: Space) -> dict[str, Any]:
    """A trial to run first, `FIELD=VALUE,FIELD=VALUE` (say the config of a run that went well).

    Raises:
        SpaceError: a field that the space does not search, or a value the schema refuses.
    """
    searched = {p.field: p for p in space.params}
    point: dict[str, Any] = {}
    for item in text.split(","):
        field, sep, value = item.partition("=")
        field = field.strip().replace("-", "_")
        if not sep or field not in searched:
            raise SpaceError(
                f"--try {text}: give FIELD=VALUE pairs of searched fields ({', '.join(searched)}), joined by commas"
            )
        point[field] = _value(field, value.strip(), f"--try {text}")
        param = searched[field]
        inside = point[field] in param.choices if param.kind == "choice" else param.low <= point[field] <= param.high
        if not inside:
            raise SpaceError(f"--try {text}: {field}={value.strip()} is outside {param.text}")
    return point


def config_reason(exc: ConfigError) -> str:
    """The schema's reasons in one line, without `make_config`'s heading: "hop_length 200 must
    not exceed n_fft 128", or "lr: ..." for a field's own bound."""
    lines = [line.strip().removeprefix("config: ") for line in str(exc).splitlines()[1:]]
    return "; ".join(line for line in lines if line) or str(exc)


def check_space(space: Space, fixed: dict[str, Any], seed: int = 0) -> str | None:
    """Check that the space's combinations make valid configs, as a trial makes its config.

    Every corner (each range's two ends crossed with every choice; a sample of them
    beyond CHECK_CORNERS) and CHECK_DRAWS seeded random draws go with the fixed fields
    through `make_config`; conditions are decided by `Space.sample`, as in a trial. The
    draws, like a sampler's first trials, make the share of invalid ones about the share
    of trials that would be.

    Returns: None when every combination checked is valid; else one line saying how many
        are not, with an example and the schema's reason (the sweep can go on: the
        driver fails such a trial at once and asks for another).

    Raises:
        SpaceError: no combination checked is valid, naming one and the schema's reason.
    """
    checked, invalid = 0, []
    for trial in _checks(space, random.Random(seed)):
        values = space.sample(trial)  # type: ignore[arg-type]  # as a trial decides them
        checked += 1
        try:
            make_config(**fixed, **values)
        except ConfigError as exc:
            invalid.append((values, config_reason(exc)))
    if not invalid:
        return None
    values, reason = invalid[0]
    example = f"{', '.join(f'{k}={_show(v)}' for k, v in values.items())} ({reason})"
    if len(invalid) == checked:
        raise SpaceError(f"no combination of the space makes a valid config ({checked} checked), e.g. {example}")
    share = len(invalid) / checked
    return f"{len(invalid)} of {checked} combinations checked ({share:.0%}) are not valid configs, e.g. {example}"


class _CheckTrial:
    """Stands in for an Optuna trial in `Space.sample`: the given corner's values, else seeded
    draws (uniform, or log-uniform on a log range)."""

    def __init__(self, rng: random.Random, corner: dict[str, Any] | None = None) -> None:
        self.rng, self.corner = rng, corner or {}

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return self.corner[name] if name in self.corner else self.rng.choice(choices)

    def suggest_int(self, name: str, low: int, high: int, log: bool = False) -> int:
        if name in self.corner:
            return self.corner[name]
        return min(high, max(low, round(self._uniform(low, high, log)))) if log else self.rng.randint(low, high)

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        return self.corner[name] if name in self.corner else self._uniform(low, high, log)

    def _uniform(self, low: float, high: float, log: bool) -> float:
        return math.exp(self.rng.uniform(math.log(low), math.log(high))) if log else self.rng.uniform(low, high)


def _checks(space: Space, rng: random.Random) -> Iterator[_CheckTrial]:
    """The corners, then the random draws."""
    corners = [list(p.choices) if p.kind == "choice" else [p.low, p.high] for p in space.params]
    fields = [p.field for p in space.params]
    if math.prod(len(c) for c in corners) <= CHECK_CORNERS:
        picks: Iterator[tuple[Any, ...]] = itertools.product(*corners)
    else:
        picks = (tuple(rng.choice(c) for c in corners) for _ in range(CHECK_CORNERS))
    for pick in picks:
        yield _CheckTrial(rng, dict(zip(fields, pick)))
    for _ in range(CHECK_DRAWS):
        yield _CheckTrial(rng)
