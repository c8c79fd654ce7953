"""Result files: written atomically (temporary file + rename) so a killed run never leaves half a file."""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    import torch  # here, so that reading and writing result files does not need torch

    _atomic(path, lambda h: torch.save(obj, h))


def save_npz(path: Path, **arrays) -> None:
    import numpy as np

    _atomic(path, lambda h: np.savez_compressed(h, **arrays))
