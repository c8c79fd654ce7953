"""The rules a setting must follow, in one place: every check of a value raises :class:`ConfigError` with
one line that names the key, the bad value and what is allowed.

The objects that own a setting (a task, a network, an activation family) call these when they are built;
:mod:`neuromod.runner.checks` calls them for the settings no object owns (``training.*``, ``seed``...)
before torch is imported. Needs no torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


class ConfigError(ValueError):
    """A configuration value that cannot be used."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(key: str, value: Any, minimum: int | None = None) -> int:
    """``value`` if it is an integer (``>= minimum``), else a ConfigError naming ``key``."""
    bound = "" if minimum is None else f" >= {minimum}"
    if not is_int(value):
        raise ConfigError(f"{key}={value!r} is not allowed: it must be an integer{bound}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key}={value} is not allowed: it must be an integer{bound}")
    return value


def number(
    key: str, value: Any, positive: bool = False, at_least: float | None = None, finite: bool = True
) -> float:
    """``value`` if it is a number (``> 0`` / ``>= at_least``), else a ConfigError naming ``key``.

    NaN is never allowed (it compares false with everything, so a NaN learning rate or accuracy
    threshold would quietly ruin the run or do nothing); infinities only with ``finite=False``.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    not_finite = ok and not math.isfinite(value)
    if not_finite and (finite or math.isnan(value)):
        ok = False
    if ok and positive and not value > 0:
        ok = False
    if ok and at_least is not None and value < at_least:
        ok = False
    if not ok:
        bound = f" >= {at_least}" if at_least is not None else ""
        kind = ("finite number" if finite else "number other than NaN") if not_finite else "number"
        need = f"a {kind} > 0" if positive else f"a {kind}{bound}"
        raise ConfigError(f"{key}={value!r} is not allowed: it must be {need}")
    return value


def interval(
    key: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    closed: str = "neither",
    shown: str | None = None,
) -> float:
    """``value`` if it is a finite number between ``low`` and ``high`` (None: unbounded), else a
    ConfigError naming ``key``. ``closed``: which ends are allowed, ``"neither"``, ``"low"``, ``"high"`` or
    ``"both"``; ``shown``: the interval as the message writes it (``"(0, pi/2]"``), else from the bounds."""
    low_in, high_in = closed in ("low", "both"), closed in ("high", "both")
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value >= low if low_in else value > low
    if ok and high is not None:
        ok = value <= high if high_in else value < high
    if not ok:
        if shown is not None:
            need = f"in {shown}"
        elif high is None:
            need = f"{'>=' if low_in else '>'} {low}" if low is not None else "finite"
        elif low is None:
            need = f"{'<=' if high_in else '<'} {high}"
        else:
            need = f"in {'[' if low_in else '('}{low}, {high}{']' if high_in else ')'}"
        raise ConfigError(f"{key}={value!r} is not allowed: it must be a number {need}")
    return value


def optional_number(key: str, value: Any, **bounds: Any) -> float | None:
    """``value`` if it is None or a number as :func:`number` allows with ``bounds``; the ConfigError says
    that null is allowed too."""
    if value is None:
        return None
    try:
        return number(key, value, **bounds)
    except ConfigError as error:
        raise ConfigError(f"{error} (or null)") from None


def at_least_items(key: str, value: Any, minimum: int, what: str = "items") -> list:
    """``value`` as a list if it is a list of at least ``minimum`` entries, else a ConfigError naming
    ``key`` (``what``: the entries' name in the message)."""
    items = None if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") else list(value)
    if items is None or len(items) < minimum:
        shown = items if items is not None else value
        raise ConfigError(f"{key}={shown!r} is not allowed: it must be a list of at least {minimum} {what}")
    return items


def delays_at_least(delays: dict[str, Any], minimum: int, why: str) -> None:
    """Every delay of every key of ``delays`` (``key -> an integer or a list of integers``) is at least
    ``minimum``, else a ConfigError naming the first key that breaks it (``why``: the reason, shown)."""
    for key, value in delays.items():
        values = list(value) if hasattr(value, "__iter__") else [value]
        if any(v < minimum for v in values):
            raise ConfigError(f"{key}={value!r} is not allowed: every delay must be >= {minimum} ({why})")


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} is not allowed: it must be true or false")
    return value


def choice(key: str, value: Any, choices: Iterable[str]) -> Any:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not allowed: choose one of {choices}")
    return value


def delay_range(min_delay: Any, max_delay: Any) -> tuple[int, int]:
    """``task.min_delay`` and ``task.max_delay``: integers >= 0, the second not below the first."""
    lo = integer("task.min_delay", min_delay, minimum=0)
    hi = integer("task.max_delay", max_delay, minimum=0)
    if hi < lo:
        raise ConfigError(f"task.max_delay={hi} is not allowed: it must be >= task.min_delay ({lo})")
    return lo, hi


def eval_delays(value: Any, key: str = "task.eval_delays") -> list[int] | None:
    """``task.eval_delays`` (or ``key``): null (the default) or a non-empty list of integers >= 0."""
    if value is None:
        return None
    items = None if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") else list(value)
    if not items or not all(is_int(d) and d >= 0 for d in items):
        shown = items if items is not None else value
        raise ConfigError(
            f"{key}={shown!r} is not allowed: it must be a non-empty list of "
            "integers >= 0 (or null for the default)"
        )
    return items


def instantiation_error(error: BaseException, key: str, node: Any) -> str:
    """One line for an object of config node ``key`` that cannot be built: an unknown ``_target_``, a
    parameter its constructor does not take, or the constructor's own message."""
    import re

    from omegaconf import OmegaConf

    target = OmegaConf.select(node, "_target_", default=None) if OmegaConf.is_config(node) else None
    text = str(error)
    unexpected = re.search(r"unexpected keyword argument '(\w+)'", text)
    if unexpected:
        return (
            f"{key}.{unexpected.group(1)} is not allowed: {target} takes no parameter {unexpected.group(1)!r}"
        )
    if isinstance(error, (ImportError, AttributeError)) or re.search(r"Error (locating|loading)", text):
        return f"{key}._target_={target!r} is not allowed: it cannot be imported (a typo in the name?)"
    return f"{key}: {first_line(error)}"
