"""Work over many independent sequences (or trials), split into calls a kernel can index.

A kernel addresses the elements of one call with integers of a fixed width: cuDNN's LSTM over
``[T, S, 4H]`` gates failed with "an illegal memory access" once ``T x S x 4H`` passed 2^31 (measured on
an NVIDIA H200 with 256 neurons x 1024 trials at H = 96 and 512 x 1024 at H = 64, both 26 steps long),
with most of its 139 GiB free. The sequences of such a call are independent, so the call is split along them
into calls of at most :data:`MAX_ELEMENTS` elements each and the results concatenated: the same values, on
every device (the split is decided from the shapes alone).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

#: The most elements one call over a batch of sequences may span (T x sequences x the widest per-step
#: row, e.g. the LSTM's 4H gates). Half of the 32-bit index range: what a library indexes internally
#: beside the gates is not documented. A module-level setting (:func:`element_limit` changes it for a
#: block); a call is split only when it is larger.
MAX_ELEMENTS = 2**30


def chunk_slices(n_items: int, per_item: int) -> list[slice]:
    """Consecutive slices covering ``range(n_items)``, each spanning at most :data:`MAX_ELEMENTS` elements
    at ``per_item`` elements per item (at least one item per slice)."""
    size = max(1, MAX_ELEMENTS // max(int(per_item), 1))
    return [slice(start, min(start + size, n_items)) for start in range(0, n_items, size)]


def in_chunks(
    fn: Callable[..., Tensor | tuple[Tensor, ...]], tensors: Sequence[Tensor], dim: int, per_item: int
) -> Tensor | tuple[Tensor, ...]:
    """``fn(*tensors)`` computed over chunks of the items along ``dim`` (the same dimension of every
    tensor and of every output), the outputs concatenated along it. ``fn`` must treat the items
    independently; ``per_item``: elements one item adds to the largest call inside ``fn``. One chunk:
    ``fn`` is called on the tensors themselves."""
    slices = chunk_slices(tensors[0].shape[dim], per_item)
    if len(slices) == 1:
        return fn(*tensors)
    parts = [fn(*(tensor[(slice(None),) * dim + (part,)] for tensor in tensors)) for part in slices]
    if isinstance(parts[0], Tensor):
        return torch.cat(parts, dim=dim)
    return tuple(torch.cat(outputs, dim=dim) for outputs in zip(*parts, strict=True))


@contextmanager
def element_limit(limit: int) -> Iterator[None]:
    """Within the block, :data:`MAX_ELEMENTS` is ``limit`` (the tests force tiny chunks with it)."""
    global MAX_ELEMENTS
    previous, MAX_ELEMENTS = MAX_ELEMENTS, int(limit)
    try:
        yield
    finally:
        MAX_ELEMENTS = previous
