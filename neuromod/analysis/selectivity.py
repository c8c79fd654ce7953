"""Selectivity: which neuron carries which content, as the mutual information between one neuron's value
(its rate, or one of its activation parameters) and the content, over trials.

Each neuron's value is cut into quantile bins; the information (bits) is corrected for its small-sample
bias by subtracting the mean information of shuffled labels. A neuron counts as selective for a content
when its information exceeds the largest of the shuffles' (p < 1 / (n_shuffles + 1)). Vectorised over
neurons, contents and shuffles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuromod.analysis.decoding import as_classes

#: Quantile bins of a neuron's value.
N_VALUE_BINS = 4
N_SHUFFLES = 19


def quantile_bins(values: np.ndarray, n_bins: int = N_VALUE_BINS) -> np.ndarray:
    """Per column of ``values [B, N]``, the quantile bin of every entry ``[B, N]`` (0..n_bins-1); a
    constant column is all 0."""
    edges = np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1], axis=0)  # [n_bins - 1, N]
    return (values[None, :, :] > edges[:, None, :]).sum(0)


def mutual_information(bins: np.ndarray, labels: np.ndarray, n_bins: int, n_classes: int) -> np.ndarray:
    """Information (bits) between ``bins [B, N]`` and each row of ``labels [S, B]`` -> ``[S, N]``."""
    B = bins.shape[0]
    x = np.eye(n_bins)[bins]  # [B, N, nb]
    y = np.eye(n_classes)[labels]  # [S, B, C]
    joint = np.einsum("bnx,sbc->snxc", x, y) / B  # [S, N, nb, C]
    px, py = joint.sum(3, keepdims=True), joint.sum(2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log2(joint / (px * py)), 0.0)
    return terms.sum((2, 3))


@dataclass
class Selectivity:
    """``information [N, K]`` (bits, bias-corrected) of every neuron about every content and whether it is
    significant (``selective [N, K]``)."""

    contents: list[str]
    information: np.ndarray
    selective: np.ndarray

    def neurons_per_content(self) -> dict[str, int]:
        return {name: int(n) for name, n in zip(self.contents, self.selective.sum(0), strict=True)}


def selectivity(
    values: np.ndarray, contents: dict[str, np.ndarray], n_shuffles: int = N_SHUFFLES, seed: int = 0
) -> Selectivity:
    """Selectivity of the neurons' ``values [B, N]`` (one value per neuron and trial) for each content."""
    rng = np.random.default_rng(seed)
    bins = quantile_bins(np.asarray(values, dtype=np.float64))
    names = list(contents)
    information = np.zeros((bins.shape[1], len(names)))
    selective = np.zeros_like(information, dtype=bool)
    for k, name in enumerate(names):
        y = as_classes(contents[name])
        labels = np.stack([y] + [rng.permutation(y) for _ in range(n_shuffles)])  # [1 + S, B]
        mi = mutual_information(bins, labels, N_VALUE_BINS, int(y.max()) + 1)  # [1 + S, N]
        information[:, k] = mi[0] - mi[1:].mean(0)
        selective[:, k] = mi[0] > mi[1:].max(0)
    return Selectivity(names, information, selective)
