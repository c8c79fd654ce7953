"""Fixed and slow points of an autonomous map ``s -> F(s)`` (Sussillo & Barak 2013), found by minimising the
speed ``q(s) = |F(s) - s|^2 / 2`` with Adam from many initial states at once (torch autograd), then
deduplicated; the stability of each is read from the eigenvalues of the Jacobian of ``F`` there (the map
is discrete in time: stable when every eigenvalue has modulus below 1).

The map works on a batch of independent systems: ``step(states [M, K, D]) -> [M, K, D]``, K systems (e.g.
the neurons of a population, each with its own modulator) and M initial states for each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

#: A point whose speed is below this is a fixed point; below ``SLOW_SPEED`` a slow point.
FIXED_SPEED = 1e-8
SLOW_SPEED = 1e-4
#: Points closer than this (Euclidean) are the same point.
SAME_POINT = 1e-2
#: An eigenvalue within this of the unit circle is marginal (a line attractor's direction along the line).
MARGINAL = 1e-3

Step = Callable[[Tensor], Tensor]


def speed(step: Step, states: Tensor) -> Tensor:
    """``q = |F(s) - s|^2 / 2`` of every state ``[M, K]``."""
    return 0.5 * (step(states) - states).pow(2).sum(-1)


def minimise_speed(
    step: Step, initial: Tensor, iterations: int = 400, lr: float = 0.01
) -> tuple[Tensor, Tensor]:
    """Descend the speed with Adam from ``initial [M, K, D]``, then polish with :func:`newton_polish`;
    returns the final states and their speeds ``[M, K]``."""
    states = initial.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([states], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, iterations)
    for _ in range(iterations):
        optimiser.zero_grad()
        speed(step, states).sum().backward()
        optimiser.step()
        schedule.step()
    states = newton_polish(step, states.detach())
    with torch.no_grad():
        return states, speed(step, states)


def newton_polish(step: Step, states: Tensor, iterations: int = 8) -> Tensor:
    """Newton steps on ``F(s) - s = 0`` from ``states [M, K, D]``: ``s <- s - (J - I)^-1 (F(s) - s)``,
    each kept only where it lowers the speed (so a slow point, where no root is near, stays as it is).
    Converges in a few steps where the descent has come close to a fixed point."""
    eye = torch.eye(states.shape[-1], dtype=states.dtype)
    for _ in range(iterations):
        with torch.no_grad():
            residual = step(states) - states
            before = 0.5 * residual.pow(2).sum(-1)
        jac = jacobians(step, states)
        try:
            delta = torch.linalg.solve(jac - eye, residual.unsqueeze(-1)).squeeze(-1)
        except RuntimeError:  # a singular system somewhere: stop here
            break
        with torch.no_grad():
            candidate = states - delta
            better = (speed(step, candidate) < before) & torch.isfinite(candidate).all(-1)
            states = torch.where(better.unsqueeze(-1), candidate, states)
        if not bool(better.any()):
            break
    return states


def deduplicate(points: Tensor, tolerance: float = SAME_POINT) -> Tensor:
    """For points ``[M, K, D]`` of K systems: ``labels [M, K]``, the index (along M) of the first point of
    the same system within ``tolerance`` of each point. A point with ``labels[m, k] == m`` represents
    its cluster."""
    distance = torch.cdist(points.transpose(0, 1), points.transpose(0, 1))  # [K, M, M]
    close = distance < tolerance
    return close.float().argmax(-1).T  # first close point (itself at the latest)  [M, K]


def jacobians(step: Step, points: Tensor) -> Tensor:
    """Jacobians of the map at ``points [M, K, D]`` -> ``[M, K, D, D]`` (the systems are independent:
    one backward pass per output dimension gives row ``i`` of every Jacobian)."""
    states = points.detach().clone().requires_grad_(True)
    out = step(states)
    rows = []
    for i in range(out.shape[-1]):
        (grad,) = torch.autograd.grad(out[..., i].sum(), states, retain_graph=i + 1 < out.shape[-1])
        rows.append(grad)
    return torch.stack(rows, dim=-2)


@dataclass
class FixedPoints:
    """The points found from every initial state and what they are.

    ``points [M, K, D]``, ``speeds [M, K]``, ``labels [M, K]`` (see :func:`deduplicate`); per distinct
    fixed point (``representative [M, K]`` True): ``eigenvalues`` of the Jacobian, ``[M, K, D]``
    (complex; NaN where the point is not a representative fixed point)."""

    points: Tensor
    speeds: Tensor
    labels: Tensor
    eigenvalues: Tensor

    @property
    def is_fixed(self) -> Tensor:
        return self.speeds < FIXED_SPEED

    @property
    def representative(self) -> Tensor:
        m = torch.arange(self.points.shape[0])[:, None]
        return (self.labels == m) & self.is_fixed

    @property
    def spectral_radius(self) -> Tensor:
        """Largest eigenvalue modulus ``[M, K]`` (inf where no eigenvalues were taken)."""
        return self.eigenvalues.abs().nan_to_num(nan=np.inf).amax(-1)

    @property
    def stable(self) -> Tensor:
        """``[M, K]``: representative fixed points whose eigenvalues all lie inside the unit circle."""
        return self.representative & (self.spectral_radius < 1 - MARGINAL)

    @property
    def marginal(self) -> Tensor:
        """``[M, K]``: representative fixed points whose largest eigenvalue lies on the unit circle."""
        return self.representative & ((self.spectral_radius - 1).abs() <= MARGINAL)

    def counts(self) -> dict[str, np.ndarray]:
        """Per system: distinct fixed points, distinct stable ones, slow (not fixed) points reached."""
        rep = self.representative
        slow = (self.speeds >= FIXED_SPEED) & (self.speeds < SLOW_SPEED)
        return {
            "fixed": rep.sum(0).numpy(),
            "stable": self.stable.sum(0).numpy(),
            "marginal": self.marginal.sum(0).numpy(),
            "slow": slow.sum(0).numpy(),
        }


def find_fixed_points(
    step: Step, initial: Tensor, iterations: int = 400, lr: float = 0.01, tolerance: float = SAME_POINT
) -> FixedPoints:
    """Minimise the speed from every initial state ``[M, K, D]``, deduplicate, and take the Jacobian's
    eigenvalues at every distinct fixed point."""
    points, speeds = minimise_speed(step, initial, iterations, lr)
    labels = deduplicate(points, tolerance)
    m = torch.arange(points.shape[0])[:, None]
    wanted = (labels == m) & (speeds < FIXED_SPEED)
    eigenvalues = torch.full(points.shape, complex(float("nan"), 0.0), dtype=torch.complex128)
    if bool(wanted.any()):
        index = wanted.nonzero(as_tuple=True)
        # the map runs on the whole batch (it keeps each point with its own system); the rows of the
        # other points cost little at these sizes
        jac = jacobians(step, points)[index]  # [R, D, D]
        eigenvalues[index] = torch.linalg.eigvals(jac.double())
    return FixedPoints(points, speeds, labels, eigenvalues)
