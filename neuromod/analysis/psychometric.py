"""Psychometric curves: the probability of a binary choice against a graded stimulus, binned, with a fitted
psychometric function

    P(choice = 1) = guess + (1 - guess - lapse) * sigmoid(bias + slope * x)

by maximum likelihood, with a bootstrap confidence interval of the slope (trials resampled).

The guess and lapse rates (each in [0, :data:`MAX_LAPSE`]) take up choices the stimulus does not explain:
a plain logistic fitted to a few lapses flattens its slope to explain them (a true slope of 8 with 5 %
lapses reads ~3.6). Choices that separate perfectly have no finite maximum-likelihood slope: the slope is
bounded (:data:`MAX_SLOPE` standard deviations of ``x`` a unit), and a fit at the bound is reported as
unresolved (``resolved`` False: the slope is at least that, and its value says nothing more), never as
the number a regulariser happened to give. Every fit (the data and each bootstrap sample) is one batched
optimisation in torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

N_BINS = 8
#: Largest guess and lapse rate the fit allows.
MAX_LAPSE = 0.2
#: Largest slope, in units of 1 / std(x): a transition narrower than 1/50 of the stimulus spread.
MAX_SLOPE = 50.0
#: A fitted slope above this fraction of :data:`MAX_SLOPE` is at the bound (unresolved).
AT_BOUND = 0.95
N_BOOTSTRAP = 100
#: Adam iterations of each fit.
FIT_ITERATIONS = 600


def fit_logistic(
    x: np.ndarray, choice: np.ndarray, iterations: int = 50, l2: float = 1e-6
) -> tuple[float, float]:
    """Maximum-likelihood ``(bias, slope)`` of a plain logistic curve through binary ``choice [B]`` at
    ``x [B]`` (no lapses; a small ``l2`` penalty keeps a perfectly separated set finite): the starting
    point of :func:`fit_psychometric`."""
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


def _fit_batch(z: torch.Tensor, y: torch.Tensor, start: tuple[float, float]) -> torch.Tensor:
    """Maximum-likelihood ``[R, 4]`` (bias, slope, guess, lapse) for ``R`` data sets at once: standardised
    stimuli ``z [R, B]`` and choices ``y [R, B]``; ``start``: (bias, slope) in standardised units."""
    R = z.shape[0]
    k0 = float(np.clip(start[1], -0.9 * MAX_SLOPE, 0.9 * MAX_SLOPE))
    raw = torch.zeros(R, 4, dtype=torch.float64)
    # keep the start's midpoint when its slope is clipped (a separated set's logistic runs off to infinity)
    midpoint = -start[0] / start[1] if start[1] else 0.0
    raw[:, 0] = -k0 * float(np.clip(midpoint, -10, 10))
    raw[:, 1] = float(np.arctanh(k0 / MAX_SLOPE))
    raw[:, 2:] = -3.0
    raw.requires_grad_(True)
    # Adam adapts every parameter's step on its own, so the R fits do not interfere (a shared line search
    # would let one hard data set stall the others)
    optimiser = torch.optim.Adam([raw], lr=0.05)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, FIT_ITERATIONS)

    def unpack(r):
        return (
            r[:, 0],
            MAX_SLOPE * torch.tanh(r[:, 1]),
            MAX_LAPSE * torch.sigmoid(r[:, 2]),
            MAX_LAPSE * torch.sigmoid(r[:, 3]),
        )

    for _ in range(FIT_ITERATIONS):
        optimiser.zero_grad()
        bias, slope, guess, lapse = unpack(raw)
        p = guess[:, None] + (1 - guess - lapse)[:, None] * torch.sigmoid(bias[:, None] + slope[:, None] * z)
        p = p.clamp(1e-12, 1 - 1e-12)
        (-(y * p.log() + (1 - y) * (1 - p).log()).sum()).backward()
        optimiser.step()
        schedule.step()
    with torch.no_grad():
        return torch.stack(unpack(raw), dim=1)


@dataclass
class PsychometricFit:
    """The fitted function (``bias``, ``slope`` in units of ``x``; ``guess``, ``lapse``), the slope's
    bootstrap interval (``slope_ci``, 2.5 and 97.5 percentiles) and whether the slope is resolved (not at
    the bound)."""

    bias: float
    slope: float
    guess: float
    lapse: float
    slope_ci: tuple[float, float]
    resolved: bool


def fit_psychometric(
    x: np.ndarray, choice: np.ndarray, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0
) -> PsychometricFit:
    """The psychometric function through binary ``choice [B]`` at ``x [B]`` with lapses and guesses, and a
    bootstrap interval of its slope over ``n_bootstrap`` resamples of the trials."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(choice, dtype=np.float64)
    mean, scale = x.mean(), (x.std() or 1.0)
    z = (x - mean) / scale
    with np.errstate(over="ignore"):
        bias0, slope0 = fit_logistic(z, y)
    rng = np.random.default_rng(seed)
    index = np.concatenate([np.arange(len(x))[None], rng.integers(0, len(x), (n_bootstrap, len(x)))])
    fits = _fit_batch(torch.as_tensor(z[index]), torch.as_tensor(y[index]), (bias0, slope0)).numpy()
    bias_z, slope_z, guess, lapse = fits[0]
    slopes = fits[1:, 1] / scale
    return PsychometricFit(
        bias=float(bias_z - slope_z * mean / scale),
        slope=float(slope_z / scale),
        guess=float(guess),
        lapse=float(lapse),
        slope_ci=(float(np.percentile(slopes, 2.5)), float(np.percentile(slopes, 97.5)))
        if n_bootstrap
        else (np.nan, np.nan),
        resolved=bool(abs(slope_z) < AT_BOUND * MAX_SLOPE),
    )


@dataclass
class Psychometric:
    """Binned choice probability (``x [K]``, ``p [K]``, ``n [K]``) and the fitted function."""

    stimulus: str
    x: np.ndarray
    p: np.ndarray
    n: np.ndarray
    fit: PsychometricFit

    @property
    def bias(self) -> float:
        return self.fit.bias

    @property
    def slope(self) -> float:
        return self.fit.slope

    def curve(self, x: np.ndarray) -> np.ndarray:
        f = self.fit
        return f.guess + (1 - f.guess - f.lapse) / (1 + np.exp(-(f.bias + f.slope * np.asarray(x))))

    @property
    def threshold(self) -> float:
        """The stimulus at the curve's midpoint (the logistic's centre)."""
        return -self.bias / self.slope if self.slope else float("nan")


def psychometric(
    stimulus: str, x: np.ndarray, choice: np.ndarray, n_bins: int = N_BINS, n_bootstrap: int = N_BOOTSTRAP
) -> Psychometric:
    """The psychometric curve of ``choice [B]`` (0 / 1) against ``x [B]``: quantile bins and the fit."""
    x, choice = np.asarray(x, dtype=np.float64), np.asarray(choice, dtype=np.float64)
    edges = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)))
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, max(len(edges) - 2, 0))
    n = np.bincount(which, minlength=len(edges) - 1).astype(float)
    kept = n > 0
    centre = np.bincount(which, weights=x, minlength=len(n))[kept] / n[kept]
    p = np.bincount(which, weights=choice, minlength=len(n))[kept] / n[kept]
    return Psychometric(stimulus, centre, p, n[kept], fit_psychometric(x, choice, n_bootstrap))
