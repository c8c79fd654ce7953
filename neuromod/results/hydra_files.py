"""Reading a job's ``.hydra/`` files fast: libyaml instead of OmegaConf, the same values.

``OmegaConf.load`` builds a node tree per file, ~10 ms for ``hydra.yaml`` alone; collecting thousands of
runs spent most of its time there. The files are plain YAML written by OmegaConf, so they are read here
with libyaml's ``CSafeLoader`` taught OmegaConf's two differences from YAML 1.1 (``1e-3`` is a float;
there are no timestamps). Interpolations (``${training.lr}``) of another key are resolved here; anything
else (resolvers such as ``${now:...}``, text around an interpolation) falls back to OmegaConf.
Override lines are parsed by Hydra's own parser, once per distinct line.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from neuromod.runfolder.settings import flatten

_FLOAT = re.compile(
    """^(?:
     [-+]?[0-9]+(?:_[0-9]+)*\\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)
    |\\.[0-9]+(?:_[0-9]+)*(?:[eE][-+][0-9]+)?
    |[-+]?[0-9]+(?:_[0-9]+)*(?::[0-5]?[0-9])+\\.[0-9_]*
    |[-+]?\\.(?:inf|Inf|INF)
    |\\.(?:nan|NaN|NAN))$""",
    re.X,
)
_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: ``yaml.safe_load``'s loader, in C where libyaml is there (override lines: plain YAML 1.1).
PlainYamlLoader = _BASE


class OmegaConfYamlLoader(_BASE):  # type: ignore[misc, valid-type]
    """A (C, where libyaml is there) safe loader that reads scalars as ``OmegaConf.load`` does."""


OmegaConfYamlLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
OmegaConfYamlLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in OmegaConfYamlLoader.yaml_implicit_resolvers.items()
}

_REFERENCE = re.compile(r"^\$\{([A-Za-z_][\w\-]*(?:\.[\w\-]+)*)\}$")


def load_yaml(path: str | Path) -> Any:
    """A YAML file written by OmegaConf, as plain Python values (interpolations left as text)."""
    return yaml.load(Path(path).read_text(), Loader=OmegaConfYamlLoader)


def _blocks(text: str, keys: Sequence[str]) -> str | None:
    """The lines of ``hydra:``'s children ``keys`` (``  job:``, ``  runtime:`` and what is indented below
    them) as a YAML document; None when the text is not laid out as Hydra writes it (block style)."""
    if not text.startswith("hydra:\n"):
        return None
    heads = tuple(f"  {key}:" for key in keys)
    kept, inside = ["hydra:"], False
    for line in text.splitlines()[1:]:
        if line.startswith("   ") or not line.strip():
            if inside:
                kept.append(line)
        elif line.startswith("  ") and line[2] != " ":
            inside = line.split(" #")[0].rstrip() in heads
            if inside:
                kept.append(line)
        else:  # a second top-level key, a list at the top: not the layout Hydra writes
            return None
    return "\n".join(kept) + "\n"


def hydra_settings(path: str | Path) -> tuple[Any, dict[str, str]]:
    """``hydra.job.num`` (None if absent) and the config groups' choices (Hydra's own groups left out)
    of a ``.hydra/hydra.yaml``; raises when the file cannot be read.

    Only the ``job`` and ``runtime`` blocks are parsed (the file's help texts and logging settings are
    most of it); a file laid out otherwise is parsed whole.
    """
    text = Path(path).read_text()
    part = _blocks(text, ("job", "runtime"))
    tree = yaml.load(part if part is not None else text, Loader=OmegaConfYamlLoader)
    hydra = (tree or {}).get("hydra") or {}
    num = (hydra.get("job") or {}).get("num")
    choices = (hydra.get("runtime") or {}).get("choices") or {}
    return num, {
        str(group): str(choice)
        for group, choice in choices.items()
        if not str(group).startswith("hydra/") and choice is not None
    }


def job_values(path: str | Path) -> tuple[dict[str, Any], set[str]] | None:
    """A ``.hydra/config.yaml`` flattened, its interpolations resolved, and the interpolated keys; None
    when an interpolation is more than a reference to another key (the caller asks OmegaConf)."""
    cfg = load_yaml(path) or {}
    if not isinstance(cfg, dict):
        return None
    cfg.pop("hydra", None)
    raw = flatten(cfg)
    derived = {k for k, v in raw.items() if isinstance(v, str) and "${" in v}
    if not derived:
        return raw, derived
    values = dict(raw)
    for key in derived:
        value = _resolve(raw, key, depth=0)
        if value is _UNRESOLVED:
            return None
        values[key] = value
    return values, derived


_UNRESOLVED = object()


def _resolve(raw: dict[str, Any], key: str, depth: int) -> Any:
    value = raw.get(key, _UNRESOLVED)
    if not isinstance(value, str) or "${" not in value:
        # A reference to a whole node (a dict or list below it) is left to OmegaConf.
        return value if key in raw else _UNRESOLVED
    match = _REFERENCE.match(value)
    if match is None or depth > 20:
        return _UNRESOLVED
    return _resolve(raw, match.group(1), depth + 1)


@functools.cache
def _parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


@functools.lru_cache(maxsize=65536)
def _key_of(line: str) -> str:
    return _parser().parse_overrides([line])[0].key_or_group


def overridden_keys(lines: Sequence[str]) -> set[str]:
    """The keys (or groups) that override lines set, by Hydra's parser; raises if a line does not parse.

    A sweep repeats the same lines (``seed=0``, ``af=gain``) over its jobs: each is parsed once.
    """
    return {_key_of(line) for line in lines}


def parse_overrides(lines: Sequence[str]) -> list:
    """Hydra's own reading of override lines (``hydra.core.override_parser.types.Override`` objects)."""
    return _parser().parse_overrides(list(lines))
