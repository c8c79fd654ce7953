"""Psychometric curves: the probability of a binary choice against a graded stimulus, binned, with a fitted
logistic ``P(choice = 1) = sigmoid(bias + slope * x)`` (maximum likelihood, Newton's method)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BINS = 8


def fit_logistic(
    x: np.ndarray, choice: np.ndarray, iterations: int = 50, l2: float = 1e-6
) -> tuple[float, float]:
    """Maximum-likelihood ``(bias, slope)`` of a logistic curve through binary ``choice [B]`` at ``x [B]``
    (a small ``l2`` penalty keeps a perfectly separated set finite)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(choice, dtype=np.float64)
    scale = x.std() or 1.0
    design = np.stack([np.ones_like(x), x / scale], axis=1)  # [B, 2]
    w = np.zeros(2)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-design @ w))
        gradient = design.T @ (y - p) - l2 * w
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + l2 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w += step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1] / scale)


@dataclass
class Psychometric:
    """Binned choice probability (``x [K]``, ``p [K]``, ``n [K]``) and the fitted ``bias`` and ``slope``."""

    stimulus: str
    x: np.ndarray
    p: np.ndarray
    n: np.ndarray
    bias: float
    slope: float

    def curve(self, x: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(self.bias + self.slope * np.asarray(x))))

    @property
    def threshold(self) -> float:
        """The stimulus at which both choices are equally likely."""
        return -self.bias / self.slope if self.slope else float("nan")


def psychometric(stimulus: str, x: np.ndarray, choice: np.ndarray, n_bins: int = N_BINS) -> Psychometric:
    """The psychometric curve of ``choice [B]`` (0 / 1) against ``x [B]``: quantile bins and the fit."""
    x, choice = np.asarray(x, dtype=np.float64), np.asarray(choice, dtype=np.float64)
    edges = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)))
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, max(len(edges) - 2, 0))
    n = np.bincount(which, minlength=len(edges) - 1).astype(float)
    kept = n > 0
    centre = np.bincount(which, weights=x, minlength=len(n))[kept] / n[kept]
    p = np.bincount(which, weights=choice, minlength=len(n))[kept] / n[kept]
    bias, slope = fit_logistic(x, choice)
    return Psychometric(stimulus, centre, p, n[kept], bias, slope)
