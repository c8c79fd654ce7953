"""A study's search space, written in Hydra's override grammar, as Optuna distributions.

One entry per key, from ``hydra.sweeper.params`` first, then from the command line (which replaces the
params' entry for the same key):

==============================  ======================================================================
``choice(a, b, ...)``, ``a,b``  one of the values (``CategoricalDistribution``)
``range(start, stop, step)``    the values Hydra's basic sweeper would run (``stop`` excluded):
                                ``IntDistribution`` / ``FloatDistribution`` with that step
``interval(low, high)``         a float in [low, high] (``FloatDistribution``)
``int(interval(low, high))``    an integer in [low, high] (``IntDistribution``)
``tag(log, ...)``               the same on a log scale (interval, or range with step 1)
a plain value (``key=value``)   fixed: passed to every trial as it was written
==============================  ======================================================================

A trial's parameters go back to the jobs as override lines (:meth:`SearchSpace.overrides`), written so
that Hydra reads them as the same values. Optuna is imported only when a space is built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob
from hydra.errors import HydraException

#: The tags a study reads; any other tag is a mistake (a typo of ``log``, a tag meant for another sweeper).
KNOWN_TAGS = frozenset({"log"})


class StudyError(HydraException, ValueError):
    """A study's setting or state that the sweeper refuses, with what to do instead (one line)."""


@dataclass(frozen=True)
class Entry:
    """One key of the search space: searched (``distribution``) or fixed (``line``, as written)."""

    key: str
    line: str
    distribution: Any = None
    #: Categorical choices that are already override text (lists, dicts: Optuna stores only scalars).
    verbatim: frozenset[str] = frozenset()


class SearchSpace:
    """The entries of a search space in their order (the params' first, then the command line's)."""

    def __init__(self, entries: Sequence[Entry]):
        self.entries = list(entries)

    @property
    def distributions(self) -> dict[str, Any]:
        """The searched keys and their Optuna distributions."""
        return {e.key: e.distribution for e in self.entries if e.distribution is not None}

    @property
    def fixed(self) -> list[str]:
        """The override lines every trial gets as they are."""
        return [e.line for e in self.entries if e.distribution is None]

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """A trial's override lines: its parameters (``params``, Optuna's) and the fixed entries."""
        lines = []
        for entry in self.entries:
            if entry.distribution is None:
                lines.append(entry.line)
                continue
            value = params[entry.key]
            text = value if isinstance(value, str) and value in entry.verbatim else override_text(value)
            lines.append(f"{entry.key}={text}")
        return lines

    def grid(self) -> dict[str, list[Any]]:
        """Every value of each searched key, for Optuna's GridSampler: the space must be discrete."""
        from optuna.distributions import CategoricalDistribution

        grid = {}
        for key, dist in self.distributions.items():
            if isinstance(dist, CategoricalDistribution):
                grid[key] = list(dist.choices)
            elif dist.step is not None and not dist.log:
                count = int(round((dist.high - dist.low) / dist.step)) + 1
                grid[key] = [dist.low + i * dist.step for i in range(count)]
            else:
                raise StudyError(
                    f"{key}: a grid sampler runs every value of each key, but {key} is searched over an "
                    "interval; give its values with choice(...) or range(...), or use another sampler "
                    "(hydra/sweeper/sampler=tpe)"
                )
        return grid

    def check_compatible(self, study: Any) -> None:
        """A continued study keeps the kind of each key's distribution, its log scale and its choices
        (Optuna refuses a change half-way through a launch): refused here, before any trial runs."""
        from optuna.distributions import check_distribution_compatibility

        new = self.distributions
        seen: set[str] = set()
        for trial in study.get_trials(deepcopy=False):
            for key, old in trial.distributions.items():
                if key in seen or key not in new:
                    continue
                seen.add(key)
                try:
                    check_distribution_compatibility(old, new[key])
                except ValueError as error:
                    raise StudyError(
                        f"{key}: study {study.study_name!r} searched it as {_describe(old)}, this launch "
                        f"as {_describe(new[key])} ({error}); keep its search space (bounds may change), "
                        "or start another study (hydra.sweeper.study_name or hydra.sweep.dir)"
                    ) from None


def parse_search_space(params: Mapping[str, Any] | None, arguments: Sequence[str]) -> SearchSpace:
    """The search space of ``hydra.sweeper.params`` (``{key: value}``) and the command line's overrides
    (``arguments``): one entry per key, a later entry for a key replacing an earlier one in its place."""
    parser = _parser()
    sources = [
        ("hydra.sweeper.params", f"{key}={_param_text(value)}") for key, value in (params or {}).items()
    ]
    sources += [("the command line", line) for line in arguments]
    entries: dict[str, Entry] = {}
    for where, line in sources:
        try:
            override = parser.parse_override(line)
        except HydraException as error:
            raise StudyError(f"{where}: cannot parse {line!r}: {str(error).splitlines()[0]}") from None
        key = override.get_key_element()
        entries[key] = to_entry(override, line, where)
    return SearchSpace(list(entries.values()))


def to_entry(override: Any, line: str, where: str = "the search space") -> Entry:
    """One parsed override as an entry of the search space (``where`` names its source in errors)."""
    key = override.get_key_element()
    if not override.is_sweep_override():
        return Entry(key, line)
    value = override.value()

    def bad(problem: str) -> StudyError:
        return StudyError(f"{where}: {key} ({line.partition('=')[2]}): {problem}")

    if override.is_delete():
        raise bad("a deleted key (~key) cannot be searched; write key=choice(...) without ~")
    tags = set(getattr(value, "tags", None) or ())
    if tags - KNOWN_TAGS:
        raise bad(f"unknown tag {sorted(tags - KNOWN_TAGS)}: the one tag a study reads is log")
    log = "log" in tags
    if isinstance(value, Glob):
        raise bad("glob(...) is not searched by a study; list the options with choice(...)")
    if override.is_choice_sweep():
        if log:
            raise bad("a choice has no scale: tag(log, ...) applies to interval(...) and range(...)")
        return _choice(key, line, list(override.sweep_iterator()), bad)
    if override.is_range_sweep():
        return Entry(key, line, _range(value, list(override.sweep_iterator()), log, bad))
    if override.is_interval_sweep():
        return Entry(key, line, _interval(value.start, value.end, log, bad))
    raise bad("not a sweep a study can search: use choice(...), range(...) or interval(...)")


def _choice(key: str, line: str, values: list[Any], bad) -> Entry:
    from optuna.distributions import CategoricalDistribution

    choices, verbatim = [], set()
    for value in values:
        if value is None or isinstance(value, (bool, int, float, str)):
            choices.append(value)
        else:  # a list or dict: kept as its override text, which Hydra reads back as the same value
            text = override_text(value)
            choices.append(text)
            verbatim.add(text)
    if len({repr(c) for c in choices}) < len(choices):
        raise bad("lists a value twice; give each value once")
    return Entry(key, line, CategoricalDistribution(choices), frozenset(verbatim))


def _range(value: Any, values: list[Any], log: bool, bad) -> Any:
    from optuna.distributions import FloatDistribution, IntDistribution

    if not values:
        raise bad(f"the range is empty (stop {value.stop} is not past start {value.start}); check its bounds")
    low, high, step = min(values), max(values), abs(value.step)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if log and step != 1:
            raise bad(f"a log scale samples integers with step 1, not {step}; use tag(log, range(a, b))")
        if log and low < 1:
            raise bad(f"a log scale needs values of at least 1 (the range starts at {low})")
        return IntDistribution(int(low), int(high), log=log, step=int(step))
    if log:
        raise bad("a log scale has no float step; use tag(log, interval(a, b)) for floats")
    return FloatDistribution(float(low), float(high), step=float(step))


def _interval(low: Any, high: Any, log: bool, bad) -> Any:
    from optuna.distributions import FloatDistribution, IntDistribution

    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high)):
        raise bad("an interval needs finite bounds")
    if low >= high:
        raise bad(f"an interval needs its lower bound below its upper one (got {low} and {high})")
    if log and low <= 0:
        raise bad(
            f"a log scale needs a lower bound above 0 (got {low}); e.g. tag(log, interval(1e-5, {high}))"
        )
    if isinstance(low, int) and isinstance(high, int):  # int(interval(a, b))
        return IntDistribution(low, high, log=log)
    return FloatDistribution(float(low), float(high), log=log)


def _describe(dist: Any) -> str:
    name = type(dist).__name__.replace("Distribution", "").lower()
    if hasattr(dist, "choices"):
        return f"a choice of {list(dist.choices)}"
    return f"{'a log-scale ' if dist.log else 'an '}{name} in [{dist.low}, {dist.high}]"


# --------------------------------------------------------------------------- values as override text
_PARSER: Any = None


def _parser() -> OverridesParser:
    global _PARSER
    if _PARSER is None:
        _PARSER = OverridesParser.create()
    return _PARSER


def _param_text(value: Any) -> str:
    """An entry of ``hydra.sweeper.params`` as override text: strings as written, other YAML values
    (numbers, lists) in the grammar."""
    return value if isinstance(value, str) else override_text(value)


def override_text(value: Any) -> str:
    """``value`` as the right-hand side of an override that Hydra reads back as the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # 1e-05, 1e+30, inf, nan: all read back as the same float
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_string_text(str(k))}:{override_text(v)}" for k, v in value.items()) + "}"
    return _string_text(str(value))


def _string_text(value: str) -> str:
    """A string as written where the grammar reads it as that string, quoted otherwise ('1', 'a b')."""
    for text in (value, "'" + value.replace("'", "\\'") + "'", '"' + value.replace('"', '\\"') + '"'):
        try:
            if _parser().parse_override(f"k={text}").value() == value:
                return text
        except HydraException:
            continue
    raise StudyError(f"the value {value!r} cannot be written as an override")
