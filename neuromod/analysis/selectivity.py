"""Selectivity: which neuron carries which content, as the mutual information between one neuron's value
(its rate, or one of its activation parameters) and the content, over trials.

Each neuron's value is cut into quantile bins; the information (bits) is corrected for its small-sample
bias by subtracting the mean information of shuffled labels. Each neuron-content pair gets the p-value of
the G-test of independence (``2 B ln 2 I`` is chi-squared with ``(bins - 1)(classes - 1)`` degrees of
freedom under independence; a permutation p-value cannot go below 1 / (shuffles + 1), too coarse for a
correction over many tests), and a pair
counts as selective when it survives the Benjamini-Hochberg procedure over all neurons x contents at a
false discovery rate of :data:`FDR` (uncorrected, 5 % of the pairs of a network that holds nothing would
be called selective). Vectorised over neurons, contents and shuffles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neuromod.analysis.decoding import as_classes

#: Quantile bins of a neuron's value.
N_VALUE_BINS = 4
#: Shuffles per content (the bias correction of the information).
N_SHUFFLES = 19
#: False discovery rate of the Benjamini-Hochberg procedure.
FDR = 0.05


def benjamini_hochberg(p: np.ndarray, q: float = FDR) -> np.ndarray:
    """Which of the p-values ``p`` (any shape) are discoveries at false discovery rate ``q``."""
    flat = np.asarray(p, dtype=np.float64).reshape(-1)
    order = np.argsort(flat)
    m = len(flat)
    below = flat[order] <= q * np.arange(1, m + 1) / m
    keep = np.zeros(m, dtype=bool)
    if below.any():
        keep[order[: int(np.flatnonzero(below).max()) + 1]] = True
    return keep.reshape(np.shape(p))


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


def g_test(information: np.ndarray, bins: np.ndarray, classes: np.ndarray, n_trials: int) -> np.ndarray:
    """P-values ``[N]`` of the G-test of independence from the plug-in information (bits) of each neuron
    ``[N]``: ``G = 2 n ln(2) I`` against chi-squared with ``(bins used - 1)(classes - 1)`` degrees of
    freedom (a constant neuron has p = 1)."""
    used = np.array([len(np.unique(bins[:, n])) for n in range(bins.shape[1])])
    df = (used - 1) * (len(np.unique(classes)) - 1)
    g = torch.as_tensor(2 * n_trials * np.log(2) * np.maximum(information, 0), dtype=torch.float64)
    dof = torch.as_tensor(np.maximum(df, 1), dtype=torch.float64)
    p = torch.special.gammaincc(dof / 2, g / 2).numpy()  # the chi-squared survival function
    return np.where(df > 0, p, 1.0)


@dataclass
class Selectivity:
    """``information [N, K]`` (bits, bias-corrected) of every neuron about every content, its permutation
    ``p_values [N, K]`` and whether it is significant after the correction (``selective [N, K]``)."""

    contents: list[str]
    information: np.ndarray
    selective: np.ndarray
    p_values: np.ndarray

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
    p_values = np.ones_like(information)
    for k, name in enumerate(names):
        y = as_classes(contents[name])
        labels = np.stack([y] + [rng.permutation(y) for _ in range(n_shuffles)])  # [1 + S, B]
        mi = mutual_information(bins, labels, N_VALUE_BINS, int(y.max()) + 1)  # [1 + S, N]
        information[:, k] = mi[0] - mi[1:].mean(0)
        p_values[:, k] = g_test(mi[0], bins, y, len(y))
    return Selectivity(names, information, benjamini_hochberg(p_values), p_values)
