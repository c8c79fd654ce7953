"""One line for the errors users meet before a run starts: Hydra's (an unknown option or key, an override
it cannot parse) and a config node that cannot be built. Needs no torch."""

from __future__ import annotations

from omegaconf import OmegaConf

from neuromod.validation import first_line


def command_line_error(error: BaseException) -> str:
    """One line for an error Hydra raises while composing the config from the command line: an unknown
    group option (with the options there are), an unknown key (with the nearest existing one), an override
    it cannot parse."""
    import difflib
    import re

    from hydra.errors import HydraException, MissingConfigException, OverrideParseException

    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options:
        group, _, option = error.missing_cfg_file.rpartition("/")
        return f"{group}={option} is not an option of {group}: choose one of [{', '.join(error.options)}]"
    if isinstance(error, OverrideParseException):
        lines = [
            line.strip()
            for line in str(error.message).splitlines()
            if line.strip() and not line.startswith(("See https://", "Error parsing override"))
        ]
        return f"cannot parse the override {error.override!r}: {lines[0] if lines else 'invalid syntax'}"
    cause = error.__cause__
    full_key = getattr(cause, "full_key", None)
    # a key missing from a dict node, or from a structured one (neuromod.schema)
    if full_key and ("not in struct" in str(cause) or re.match(r"Key '[^']*' not in '", str(cause))):
        parent = getattr(cause, "parent_node", None)
        known = [str(k) for k in parent.keys() if k != "hydra"] if OmegaConf.is_dict(parent) else []
        key = str(getattr(cause, "key", full_key))
        prefix = full_key[: -len(key)] if full_key.endswith(key) else ""
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {prefix}{close[0]}?" if close else f"known keys: [{', '.join(known)}]"
        append = re.search(r"use (\+\S+)", str(error))
        add = f"; to add a new key write {append.group(1)}" if append else ""
        return f"{full_key} is not a key of the configuration ({hint}){add}"
    message = first_line(error)
    if cause is not None and str(cause).strip():
        message += f" ({first_line(cause)})"
    extra = _missing_plugin_extra(message)
    if extra:
        message += (
            f"; its plugin is an optional extra: make install EXTRAS={extra} (or pip install -e '.[{extra}]')"
        )
    if not isinstance(error, HydraException):
        message = f"the command line cannot be applied: {message}"
    return message


#: Hydra's own config groups whose options come from optional extras, and the extra that installs them.
PLUGIN_EXTRAS = {
    "hydra/launcher/joblib": "sweeps",
    "hydra/launcher/submitit": "sweeps",
}


def _missing_plugin_extra(message: str) -> str | None:
    """The extra that provides the plugin a "Could not load 'hydra/...'" message names (None otherwise)."""
    if "Could not load" not in message:
        return None
    for prefix, extra in PLUGIN_EXTRAS.items():
        if f"'{prefix}" in message:
            return extra
    return None
