"""Held-out content: a fixed split of a task's finite content space into training, validation and test parts.

A task whose trials are built from finitely many contents (``time_person``: which person had each slot)
numbers them ``0 .. n_codes - 1``; :class:`ContentSplit` assigns each code to one part, from its own seed
and independently of the run's seed, and draws a set's codes from its part only. A validation or test trial
therefore never shows training a content it has seen: the test figure is generalisation to unseen
combinations, and no test trial can ever be drawn for training, however long the run.

Up to :data:`TABLE_LIMIT` codes the split is exact (a seeded permutation: ``round(fraction * n_codes)``
codes in each held-out part); larger spaces (``time_person_day``: 8^8 assignments) assign each code by a
seeded integer hash, so each part holds its fraction up to sampling noise, and drawing rejects codes of
other parts (vectorised over the trials, a few rounds).
"""

from __future__ import annotations

import torch
from torch import Tensor

from neuromod import validation as rules
from neuromod.tasks.base import SPLITS, check_split

#: Largest content space split through an explicit table (one byte a code).
TABLE_LIMIT = 2**22
_MASK31 = (1 << 31) - 1
#: Most rejection rounds when drawing from a hashed split (each keeps a row with probability >= its
#: part's fraction, so this is never reached for fractions >= 0.01 and a few thousand rows).
_MAX_ROUNDS = 10_000


def _hash_unit(codes: Tensor, seed: int) -> Tensor:
    """A seeded hash of integer ``codes`` into ``[0, 1)`` (three multiply/xor-shift rounds on 31 bits;
    every product stays below 2^62, so int64 never overflows)."""
    h = (codes ^ (codes >> 31)) & _MASK31
    for r in range(3):
        h = (h * 1103515245 + 12345 + 7919 * (seed + r)) & _MASK31
        h = h ^ (h >> 13)
    return h.double() / float(1 << 31)


class ContentSplit:
    """Codes ``0 .. n_codes - 1`` split into ``train``, ``validation`` and ``test`` parts.

    ``validation`` and ``test`` are the fractions held out (the rest trains); ``seed`` fixes which codes.
    ``name`` is the config prefix named in errors (``task.holdout``)."""

    def __init__(
        self, n_codes: int, validation: float, test: float, seed: int = 0, name: str = "task.holdout"
    ):
        validation_fraction = _fraction(f"{name}_validation", validation)
        test_fraction = _fraction(f"{name}_test", test)
        if validation_fraction + test_fraction >= 1:
            raise rules.ConfigError(
                f"{name}_validation + {name}_test = {validation_fraction + test_fraction:g} leaves no "
                "content for training: their sum must be < 1"
            )
        self.n_codes = int(n_codes)
        self.seed = int(rules.integer(f"{name}_seed", seed, minimum=0))
        self.fractions = {
            "train": 1.0 - validation_fraction - test_fraction,
            "validation": validation_fraction,
            "test": test_fraction,
        }
        self.exact = self.n_codes <= TABLE_LIMIT
        if self.exact:
            n_test = round(test_fraction * self.n_codes)
            n_validation = round(validation_fraction * self.n_codes)
            for key, count, fraction in (
                (f"{name}_test", n_test, test_fraction),
                (f"{name}_validation", n_validation, validation_fraction),
            ):
                if fraction > 0 and count < 1:
                    raise rules.ConfigError(
                        f"{key}={fraction:g} holds out no content of this task's {self.n_codes}: raise it"
                    )
            if self.n_codes - n_test - n_validation < 1:
                raise rules.ConfigError(
                    f"{name}_validation and {name}_test leave none of this task's {self.n_codes} contents "
                    "for training: lower them"
                )
            order = torch.randperm(self.n_codes, generator=torch.Generator().manual_seed(self.seed))
            part = torch.zeros(self.n_codes, dtype=torch.int8)
            part[order[:n_test]] = SPLITS.index("test")
            part[order[n_test : n_test + n_validation]] = SPLITS.index("validation")
            self._part = part.long()
            self._codes = {s: (part == k).nonzero().squeeze(1) for k, s in enumerate(SPLITS)}

    def part_of(self, codes: Tensor) -> Tensor:
        """The index in :data:`SPLITS` of each code's part ``[...]`` (long)."""
        codes = codes.long()
        if self.exact:
            return self._part.to(codes.device)[codes]
        u = _hash_unit(codes, self.seed)
        test = self.fractions["test"]
        held = test + self.fractions["validation"]
        part = torch.zeros_like(codes)
        part[u < held] = SPLITS.index("validation")
        part[u < test] = SPLITS.index("test")
        return part

    def sizes(self) -> dict[str, int | float]:
        """Number of codes in each part (exact) or the expected number (hashed)."""
        if self.exact:
            return {s: int(len(self._codes[s])) for s in SPLITS}
        return {s: round(f * self.n_codes) for s, f in self.fractions.items()}

    def draw(self, n: int, split: str, generator: torch.Generator) -> Tensor:
        """``n`` codes drawn uniformly from ``split``'s part, with ``generator`` ``[n]`` (long)."""
        check_split(split)
        device = generator.device
        if split != "train" and self.fractions[split] == 0:
            split = "train"  # nothing held out for this set: it draws from the training contents
        if self.exact:
            pool = self._codes[split].to(device)
            return pool[torch.randint(len(pool), (n,), generator=generator, device=device)]
        want = SPLITS.index(split)
        codes = torch.randint(self.n_codes, (n,), generator=generator, device=device)
        wrong = self.part_of(codes) != want
        for _ in range(_MAX_ROUNDS):
            if not bool(wrong.any()):
                return codes
            index = wrong.nonzero().squeeze(1)
            codes[index] = torch.randint(self.n_codes, (len(index),), generator=generator, device=device)
            wrong[index] = self.part_of(codes[index]) != want
        raise RuntimeError(f"could not draw {n} {split} contents: its part of the content space is too small")

    def describe(self) -> dict:
        """What ``summary.json`` records of the split."""
        return {
            "by": "content",
            "n_contents": self.n_codes,
            "contents": self.sizes(),
            "exact": self.exact,
            "seed": self.seed,
        }


def _fraction(key: str, value) -> float:
    value = rules.number(key, value, at_least=0)
    if value >= 1:
        raise rules.ConfigError(f"{key}={value!r} is not allowed: it must be a fraction in [0, 1)")
    return float(value)
