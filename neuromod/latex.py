"""LaTeX helpers shared by the run's parameter table and the collection's summary table."""

from __future__ import annotations

from typing import Any

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def escape(text: Any) -> str:
    """``text`` with LaTeX's special characters escaped, for use in a table cell."""
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))
