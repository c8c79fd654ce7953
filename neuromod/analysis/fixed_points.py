"""Fixed and slow points of an autonomous map ``s -> F(s)``, found in two ways from many initial states at
once, then deduplicated; the stability of each is read from the eigenvalues of the Jacobian of ``F`` there
(the map is discrete in time: stable when every eigenvalue has modulus below 1).

- **Forward simulation** (``forward_steps > 0``): iterate the map itself, then polish with Newton steps.
  This finds the attractors the states actually flow to, however far away they lie (a trained modulator's
  cell state may travel to norms of ~1,000 over thousands of steps); it cannot find unstable points.
- **Speed minimisation** (Sussillo & Barak 2013): descend ``q(s) = |F(s) - s|^2 / 2`` with Adam, then
  Newton. This finds fixed and slow points near the initial states, unstable ones included, but a
  bounded descent does not travel far: a point it does not reach is reported *not converged*, never
  as "no fixed point".

Convergence is judged on the relative step ``|F(s) - s| / (1 + |s|)`` (an absolute speed means nothing at
norms of 1,000): fixed below :data:`RELATIVE_FIXED`, slow below :data:`RELATIVE_SLOW`, else not converged.

The map works on a batch of independent systems: ``step(states [M, K, D]) -> [M, K, D]``, K systems (e.g.
the neurons of a population, each with its own modulator) and M initial states for each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

#: A point whose relative step ``|F(s) - s| / (1 + |s|)`` is below this is a fixed point; below
#: ``RELATIVE_SLOW`` a slow point; above, the search did not converge there.
RELATIVE_FIXED = 1e-7
RELATIVE_SLOW = 1e-3
#: Points closer than this, relative to ``1 + |s|`` (Euclidean), are the same point.
SAME_POINT = 1e-2
#: How often :func:`simulate` checks whether every state has converged (it stops early then).
CHECK_EVERY = 100
#: An eigenvalue within this of the unit circle is marginal (a line attractor's direction along the line).
MARGINAL = 1e-3

Step = Callable[[Tensor], Tensor]


def speed(step: Step, states: Tensor) -> Tensor:
    """``q = |F(s) - s|^2 / 2`` of every state ``[M, K]``."""
    return 0.5 * (step(states) - states).pow(2).sum(-1)


def relative_step(step: Step, states: Tensor) -> Tensor:
    """``|F(s) - s| / (1 + |s|)`` of every state ``[M, K]``."""
    with torch.no_grad():
        return (step(states) - states).norm(dim=-1) / (1 + states.norm(dim=-1))


def simulate(step: Step, initial: Tensor, n_steps: int, check_every: int = CHECK_EVERY) -> tuple[Tensor, int]:
    """Iterate the map ``n_steps`` times from ``initial [M, K, D]`` (stopping early once every state's
    relative step is below :data:`RELATIVE_FIXED`); the states reached and the steps taken."""
    states = initial.detach()
    taken = 0
    with torch.no_grad():
        while taken < n_steps:
            for _ in range(min(check_every, n_steps - taken)):
                states = step(states)
            taken += min(check_every, n_steps - taken)
            if not bool(torch.isfinite(states).all()) or bool(
                (relative_step(step, states) < RELATIVE_FIXED).all()
            ):
                break
    return states, taken


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
    by_system = points.transpose(0, 1)  # [K, M, D]
    distance = torch.cdist(by_system, by_system)  # [K, M, M]
    close = distance < tolerance * (1 + by_system.norm(dim=-1))[:, :, None]
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

    ``points [M, K, D]``, ``speeds [M, K]`` (``q``), ``relative [M, K]`` (the relative step),
    ``labels [M, K]`` (see :func:`deduplicate`); per distinct fixed point (``representative [M, K]``
    True): ``eigenvalues`` of the Jacobian, ``[M, K, D]`` (complex; NaN where the point is not a
    representative fixed point); ``forward_steps``: the map iterations the forward simulation took (0:
    speed minimisation)."""

    points: Tensor
    speeds: Tensor
    relative: Tensor
    labels: Tensor
    eigenvalues: Tensor
    forward_steps: int = 0

    @property
    def is_fixed(self) -> Tensor:
        return self.relative < RELATIVE_FIXED

    @property
    def is_slow(self) -> Tensor:
        """``[M, K]``: slow points (relative step below :data:`RELATIVE_SLOW`, not fixed)."""
        return (self.relative < RELATIVE_SLOW) & ~self.is_fixed

    @property
    def not_converged(self) -> Tensor:
        """``[M, K]``: starts from which the search reached neither a fixed nor a slow point."""
        return ~(self.relative < RELATIVE_SLOW)

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
        """Per system: distinct fixed points, distinct stable ones, distinct marginal ones, starts that
        ended at a slow (not fixed) point, starts from which the search did not converge."""
        return {
            "fixed": self.representative.sum(0).numpy(),
            "stable": self.stable.sum(0).numpy(),
            "marginal": self.marginal.sum(0).numpy(),
            "slow": self.is_slow.sum(0).numpy(),
            "not_converged": self.not_converged.sum(0).numpy(),
        }


def find_fixed_points(
    step: Step,
    initial: Tensor,
    iterations: int = 400,
    lr: float = 0.01,
    tolerance: float = SAME_POINT,
    forward_steps: int = 0,
    simulate_step: Step | None = None,
) -> FixedPoints:
    """Fixed points from every initial state ``[M, K, D]``: with ``forward_steps > 0`` by iterating the
    map (``simulate_step``, e.g. the same map in single precision, if given) then Newton steps on
    ``step``; else by minimising the speed (``iterations`` Adam steps at ``lr``, then Newton). Then
    deduplicated, and the Jacobian's eigenvalues taken at every distinct fixed point."""
    taken = 0
    if forward_steps > 0:
        fast = simulate_step or step
        reached, taken = simulate(fast, initial.to(_dtype_of(fast, initial)), forward_steps)
        points = newton_polish(step, reached.to(initial.dtype))
        with torch.no_grad():
            speeds = speed(step, points)
    else:
        points, speeds = minimise_speed(step, initial, iterations, lr)
    relative = relative_step(step, points)
    labels = deduplicate(points, tolerance)
    m = torch.arange(points.shape[0])[:, None]
    wanted = (labels == m) & (relative < RELATIVE_FIXED)
    eigenvalues = torch.full(points.shape, complex(float("nan"), 0.0), dtype=torch.complex128)
    if bool(wanted.any()):
        index = wanted.nonzero(as_tuple=True)
        # the map runs on the whole batch (it keeps each point with its own system); the rows of the
        # other points cost little at these sizes
        jac = jacobians(step, points)[index]  # [R, D, D]
        eigenvalues[index] = torch.linalg.eigvals(jac.double())
    return FixedPoints(points, speeds, relative, labels, eigenvalues, taken)


def _dtype_of(step: Step, like: Tensor) -> torch.dtype:
    """The dtype ``step`` computes in (a map may carry it as ``step.dtype``), else ``like``'s."""
    return getattr(step, "dtype", like.dtype)
