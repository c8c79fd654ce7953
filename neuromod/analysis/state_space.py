"""State space: principal components of a signal (rates, activation parameters, modulator states) over the
steps and trials of a set of trials, the variance they explain and the signal's dimensionality.

The participation ratio ``(sum l)^2 / sum l^2`` of the covariance's eigenvalues ``l`` is the number of
dimensions the signal effectively spans: 1 when one direction holds all the variance, D when D directions
hold equal variance. It is computed per trial period (cue, delay, ...) over the samples of that period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: Principal components kept (variance explained is reported for these).
N_COMPONENTS = 10


def covariance_eigenvalues(samples: np.ndarray | torch.Tensor) -> np.ndarray:
    """Eigenvalues (descending) of the covariance of ``samples [S, F]``."""
    X = torch.as_tensor(np.asarray(samples) if not torch.is_tensor(samples) else samples).float()
    X = X - X.mean(0)
    if X.shape[0] < 2:
        return np.zeros(1)
    # the smaller of the two products has the same non-zero eigenvalues
    cov = X.T @ X if X.shape[1] <= X.shape[0] else X @ X.T
    return (torch.linalg.eigvalsh(cov.double()) / (X.shape[0] - 1)).flip(0).clamp(min=0).numpy()


def participation_ratio(samples: np.ndarray | torch.Tensor) -> float:
    """``(sum l)^2 / sum l^2`` of the covariance of ``samples [S, F]`` (0 for a constant signal)."""
    eig = covariance_eigenvalues(samples)
    total = float((eig**2).sum())
    return float(eig.sum() ** 2 / total) if total > 1e-24 else 0.0


@dataclass
class PCA:
    """Principal axes of a signal: ``mean [F]``, ``components [K, F]`` and the fraction of the variance
    each explains ``[K]``."""

    mean: np.ndarray
    components: np.ndarray
    explained: np.ndarray

    def project(self, x: np.ndarray) -> np.ndarray:
        """``x [..., F]`` -> coordinates ``[..., K]``."""
        return (x - self.mean) @ self.components.T


def pca(samples: np.ndarray, n_components: int = N_COMPONENTS) -> PCA:
    """The first ``n_components`` principal components of ``samples [S, F]``."""
    X = torch.as_tensor(samples).float()
    mean = X.mean(0)
    X = X - mean
    if X.shape[1] <= X.shape[0]:  # the covariance's eigenvectors: cheaper than an SVD of the samples
        variance, vectors = torch.linalg.eigh((X.T @ X).double())
        variance, axes = variance.flip(0).clamp(min=0), vectors.flip(1).T  # [F], [F, F]
    else:
        _, s, axes = torch.linalg.svd(X.double(), full_matrices=False)
        variance = s**2
    total = float(variance.sum())
    k = min(n_components, axes.shape[0])
    explained = (variance[:k] / total).numpy() if total > 0 else np.zeros(k)
    return PCA(mean.double().numpy(), axes[:k].numpy(), explained)


def period_dimensionality(signal: np.ndarray, periods: dict[str, tuple[int, int]]) -> dict[str, float]:
    """Participation ratio of ``signal [T, B, F]`` over the samples (steps x trials) of each period
    ``name -> (start, stop)`` (steps, shared by every trial), and over the whole trial (``all``)."""
    T, B, F = signal.shape
    out = {"all": participation_ratio(signal.reshape(T * B, F))}
    for name, (start, stop) in periods.items():
        if stop > start:
            out[name] = participation_ratio(signal[start:stop].reshape(-1, F))
    return out
