"""Result files: written atomically (temporary file + rename) so a killed run never leaves half a file.

A write that fails (a full disk, a quota, a read-only or vanished file system: any ``OSError``) raises
:class:`WriteError`, which names the file; its temporary file is removed and the old file is left as it was.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class WriteError(OSError):
    """A file that could not be written; ``str()`` is one line: ``cannot write <file>: <reason>``."""

    def __init__(self, path: str | Path, error: OSError):
        super().__init__(error.errno, error.strerror or str(error), str(path))
        #: What the caller adds to the line (e.g. what was kept intact).
        self.note = ""

    def __str__(self) -> str:
        note = f"; {self.note}" if self.note else ""
        return f"cannot write {self.filename}: {self.strerror}{note}"


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Any ``OSError`` inside becomes a :class:`WriteError` naming ``path``."""
    try:
        yield
    except WriteError:
        raise
    except OSError as error:
        raise WriteError(path, error) from error


def _atomic(path: Path, write) -> None:
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            _remove(Path(tmp))
            raise


def _remove(tmp: Path) -> None:
    """Remove a temporary file; a file system that refuses even that must not hide the first error."""
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass


def write_text(path: Path, text: str) -> None:
    _atomic(path, lambda h: h.write(text.encode()))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; null says "no value"
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # a tensor or numpy value
        return _jsonable(value.tolist())
    return value


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(_jsonable(data), indent=2) + "\n")


def read_json(path: Path) -> dict:
    with open(path) as handle:
        return json.load(handle)


def write_csv(path: Path, rows: Iterable[dict]) -> None:
    rows = list(rows)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]

    def write(handle):
        import io

        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        handle.write(text.getvalue().encode())

    _atomic(path, write)


def save_torch(path: Path, obj: Any) -> None:
    import io as _io

    import torch  # here, so that reading and writing result files does not need torch

    # serialised in memory first: torch reports a failed write to a file as a RuntimeError without errno
    buffer = _io.BytesIO()
    torch.save(obj, buffer)
    _atomic(path, lambda h: h.write(buffer.getbuffer()))


def save_npz(path: Path, **arrays) -> None:
    import numpy as np

    _atomic(path, lambda h: np.savez_compressed(h, **arrays))
