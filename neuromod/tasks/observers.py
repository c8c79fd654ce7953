"""Optimal observers of Orhan & Ma's (2019) tasks and the "fractional information loss" score.

An observer sees the same Poisson spike counts as the network and answers as well as the spikes allow;
the score says how much worse than the observer a network is (0: as good, lower is better). Every
function works on a batch at once: ``counts [B, U]`` are spike counts of one population of ``U`` units
summed over a period, ``preferred [U]`` the units' preferred stimuli.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: Probabilities are kept in [EPS, 1 - EPS] inside logarithms.
EPS = 1e-6


def circular_distance(a: Tensor, b: Tensor, period: float = math.pi) -> Tensor:
    """The true circular distance ``min(d, period - d)`` with ``d = |a - b| mod period`` (elementwise).

    Orientations live on a circle of circumference pi, so errors lie in [0, pi / 2]. (Orhan & Ma's code
    used ``|a - b| mod pi``, which counts an estimate just below a target as almost pi off.)"""
    d = torch.remainder(a - b, period)
    return torch.minimum(d, period - d)


def orientation_estimate(counts: Tensor, preferred: Tensor) -> Tensor:
    """Population-vector estimate of an orientation ``[B]`` in [0, pi): half the angle of
    ``sum_i R_i (cos 2 phi_i, sin 2 phi_i)``. With von Mises tuning of uniformly spread preferred
    orientations this is the maximum-likelihood estimate (a trial without spikes gets 0)."""
    x = (counts * torch.cos(2 * preferred)).sum(-1)  # [B]
    y = (counts * torch.sin(2 * preferred)).sum(-1)  # [B]
    return torch.remainder(0.5 * torch.atan2(y, x), math.pi)


def category_probability(counts: Tensor, preferred: Tensor, offset: float, width: float) -> Tensor:
    """2AFC: P(C = 1 | R) ``[B]`` for stimuli ``-offset`` (C = 0) and ``+offset`` (C = 1), equal priors,
    Poisson units with Gaussian tuning of ``width``: the log-likelihood ratio is
    ``(2 offset / width^2) sum_i R_i phi_i`` (``30 / 225`` for offset = width = 15)."""
    return torch.sigmoid((2 * offset / width**2) * (counts * preferred).sum(-1))


def comparison_probability(
    counts1: Tensor, counts2: Tensor, preferred: Tensor, width: float
) -> tuple[Tensor, Tensor]:
    """COMP: P(s1 > s2 | R1, R2) ``[B]`` and which trials it is defined for ``[B]`` bool.

    Each stimulus's posterior is Gaussian with mean ``mu_k = sum R^k phi / sum R^k`` and variance
    ``width^2 / sum R^k``, so P(s1 > s2) = P(N(mu2 - mu1, v1 + v2) < 0). A trial where either display
    produced no spike is undefined (returned as 0.5, ``valid`` False)."""
    n1, n2 = counts1.sum(-1), counts2.sum(-1)  # [B]
    valid = (n1 > 0) & (n2 > 0)
    n1s, n2s = n1.clamp(min=1), n2.clamp(min=1)
    mu1 = (counts1 * preferred).sum(-1) / n1s
    mu2 = (counts2 * preferred).sum(-1) / n2s
    std = torch.sqrt(width**2 / n1s + width**2 / n2s)
    p = 0.5 * (1 + torch.erf((mu1 - mu2) / (std * math.sqrt(2))))
    return torch.where(valid, p, torch.full_like(p, 0.5)), valid


def _log_i0(x: Tensor) -> Tensor:
    """log I_0(x) for x >= 0 without overflow (``i0e(x) = exp(-x) I_0(x)``)."""
    return torch.log(torch.special.i0e(x)) + x


def change_probability(counts1: Tensor, counts2: Tensor, preferred: Tensor, kappa: float) -> Tensor:
    """CD: P(changed | R1, R2) ``[B]`` with prior 1/2, for von Mises tuning ``exp(kappa cos 2(s - phi))``.

    The likelihood of one display is proportional to ``exp(kappa Re(conj(z) e^{2is}))`` with
    ``z = sum_i R_i e^{2i phi_i}``: a von Mises posterior of concentration ``kappa |z|``, where
    ``|z|^2 = sum_ij R_i R_j cos 2(phi_i - phi_j)``. (The reference code's concentration left out
    ``kappa`` and the factor 2 inside the cosine; this is the corrected one.) Integrating over the
    orientation: P(R1, R2 | same) ~ I0(kappa |z1 + z2|) and P(R1, R2 | changed) ~ I0(kappa |z1|)
    I0(kappa |z2|), the uniform prior on s giving one factor per independent orientation."""
    angle = torch.complex(torch.cos(2 * preferred), torch.sin(2 * preferred))  # [U]
    z1 = (counts1.to(angle.dtype) * angle).sum(-1)  # [B]
    z2 = (counts2.to(angle.dtype) * angle).sum(-1)
    log_changed = _log_i0(kappa * z1.abs()) + _log_i0(kappa * z2.abs())
    log_same = _log_i0(kappa * (z1 + z2).abs())
    return torch.sigmoid(log_changed - log_same)


def bernoulli_kl(p: Tensor, q: Tensor) -> Tensor:
    """KL(Bern(p) || Bern(q)) elementwise, in nats."""
    p = p.clamp(EPS, 1 - EPS)
    q = q.clamp(EPS, 1 - EPS)
    return p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))


def binary_info_loss(p_observer: Tensor, p_network: Tensor) -> float:
    """Fractional information loss of a binary task:
    ``E[KL(Bern(p_obs) || Bern(p_net))] / E[KL(Bern(p_obs) || Bern(0.5))]``.
    0 for a network that matches the observer, 1 for one that always says 0.5."""
    lost = bernoulli_kl(p_observer, p_network).mean()
    available = bernoulli_kl(p_observer, torch.full_like(p_observer, 0.5)).mean()
    return float(lost / available.clamp(min=1e-12))


def circular_info_loss(network_error: float, observer_error: float) -> float:
    """Fractional information loss of an estimation task: ``(network error - observer error) /
    observer error`` with mean circular errors."""
    return (float(network_error) - float(observer_error)) / max(float(observer_error), 1e-12)
