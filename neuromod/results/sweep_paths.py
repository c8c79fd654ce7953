"""Finding a sweep: ``multirun_paths.txt`` (one sweep folder a line, newest last), ``path=N`` and ``dir=``.

Every ``python main.py --multirun`` records its sweep folder with :func:`record_sweep_path` (the
``RecordSweepPath`` callback of :mod:`neuromod.callbacks`); :func:`resolve_sweep_dir` picks one back.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from neuromod import io


class CollectionError(ValueError):
    """The sweep to collect cannot be found (bad ``path``/``dir``, no ``multirun_paths.txt``)."""


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``folder`` (two sweeps started at once must not lose a line).

    The lock is taken on the folder itself, so no lock file is left behind; where ``fcntl`` is missing
    (Windows) the update runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_sweep_paths(paths_file: str | Path) -> list[str]:
    """The sweep folders listed in ``paths_file``, oldest first (blank lines ignored; [] if no file)."""
    try:
        text = Path(paths_file).read_text()
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def record_sweep_path(paths_file: str | Path, sweep_dir: str | Path) -> bool:
    """Make ``sweep_dir`` the newest (last) line of ``paths_file``, listed once; True if the file changed.

    Re-launching a sweep into the folder that is already last (resuming it) leaves the file as it is; a
    folder listed further up moves to the end, so ``path=0`` is always the sweep launched last.
    """
    paths_file = Path(paths_file)
    sweep = str(sweep_dir)
    paths_file.parent.mkdir(parents=True, exist_ok=True)
    with _locked(paths_file.parent):
        lines = read_sweep_paths(paths_file)
        if lines and lines[-1] == sweep:
            return False
        if sweep in lines:
            kept = [line for line in lines if line != sweep]
            io.write_text(paths_file, "".join(f"{line}\n" for line in [*kept, sweep]))
        else:
            # Appending leaves the lines already there untouched (a missing final newline is repaired).
            text = paths_file.read_text() if paths_file.exists() else ""
            with open(paths_file, "a") as handle:
                handle.write(("\n" if text and not text.endswith("\n") else "") + f"{sweep}\n")
    return True


def resolve_sweep_dir(
    path: int | None = 0,
    dir: str | Path | None = None,
    paths_file: str | Path = "multirun_paths.txt",
    base_dir: str | Path | None = None,
) -> Path:
    """The sweep folder to collect: ``dir`` if given, else line ``path`` from the end of ``paths_file``.

    ``path=0`` is the newest sweep (last line), ``path=1`` the one before, ... Relative ``dir`` and
    ``paths_file`` are taken from ``base_dir`` (default: the current directory). Raises
    :class:`CollectionError` with a one-line message when the index is out of range or a folder is missing.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if dir is not None and str(dir) != "":
        folder = Path(dir).expanduser()
        folder = folder if folder.is_absolute() else base / folder
        if not folder.is_dir():
            raise CollectionError(f"dir={dir}: no such folder ({folder})")
        return folder
    paths_file = Path(paths_file)
    paths_file = paths_file if paths_file.is_absolute() else base / paths_file
    try:
        index = int(path)
    except (TypeError, ValueError):
        raise CollectionError(f"path={path!r}: expected an integer >= 0 (0 = newest sweep)") from None
    lines = read_sweep_paths(paths_file)
    if not lines:
        raise CollectionError(
            f"no sweep recorded in {paths_file}: run `python main.py --multirun ...` first, "
            "or pass dir=FOLDER"
        )
    if not 0 <= index < len(lines):
        raise CollectionError(
            f"path={index}: {paths_file} lists {len(lines)} sweep(s), so path must be in 0..{len(lines) - 1}"
        )
    folder = Path(lines[-1 - index])
    if not folder.is_dir():
        raise CollectionError(
            f"path={index}: the sweep folder {folder} listed in {paths_file} does not exist"
        )
    return folder
