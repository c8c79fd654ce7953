"""Gradient clipping and Adam for stacked members, each member's row on its own: a per-member gradient
norm and clip, and Adam's update with a per-member learning rate. Adam is elementwise, so one update over
the stacked rows is each member's own update; the arithmetic follows ``torch.optim.Adam``'s single-tensor
path (the one it takes on the CPU) operation by operation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from neuromod.validation import ConfigError

#: ``torch.optim.Adam`` options an ensemble reproduces (the others must keep their defaults).
_OFF = ("amsgrad", "maximize", "capturable", "differentiable", "decoupled_weight_decay")


def adam_settings(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """``lr``, ``beta1``, ``beta2``, ``eps`` and ``weight_decay`` of a member's solo optimiser; a
    ConfigError naming ``training.optimizer`` for anything the ensemble does not reproduce."""
    if type(optimizer) is not torch.optim.Adam:
        raise ConfigError(
            f"training.optimizer: an ensemble trains with torch.optim.Adam, got {type(optimizer).__name__}"
        )
    group = optimizer.param_groups[0]
    on = [key for key in _OFF if group.get(key)]
    if on or group.get("fused"):
        raise ConfigError(f"training.optimizer: Adam with {on or ['fused']} cannot run in an ensemble")
    beta1, beta2 = group["betas"]
    return {
        "lr": float(group["lr"]),
        "beta1": float(beta1),
        "beta2": float(beta2),
        "eps": float(group["eps"]),
        "weight_decay": float(group["weight_decay"]),
    }


def clip_rows(grad: Tensor, slices: Sequence[tuple[int, int]], max_norm: Tensor) -> Tensor:
    """``torch.nn.utils.clip_grad_norm_`` per member, in place: ``grad [K, n]`` (member k's gradient in row
    k, its parameters at ``slices``), ``max_norm [K]`` (inf: not clipped). Returns the norms ``[K]``. As
    the solo clip: the norm of the parameters' norms, then the gradient times ``min(1, max_norm / (norm +
    1e-6))``."""
    norms = torch.stack([torch.linalg.vector_norm(grad[:, a:b], 2, dim=1) for a, b in slices])  # [n_p, K]
    total = torch.linalg.vector_norm(norms, 2, dim=0)  # [K]
    coefficient = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    grad.mul_(coefficient[:, None])
    return total


class StackedAdam:
    """Adam over ``params [K, n]`` with a learning rate per member (``lr [K]``) and ``beta1``, ``beta2``,
    ``eps``, ``weight_decay`` shared by all. Members join together and leave by :meth:`keep` (their rows
    and moments are dropped); a member resumed from a checkpoint brings its moments and its count of
    steps (:meth:`load_member`), so members may be at different steps."""

    def __init__(self, lr: Tensor, beta1: float, beta2: float, eps: float, weight_decay: float, n: int):
        self.lr = lr  # [K]
        self.beta1, self.beta2, self.eps, self.weight_decay = beta1, beta2, eps, weight_decay
        self.steps = [0] * lr.shape[0]  # Adam's step count per row
        self.exp_avg = lr.new_zeros(lr.shape[0], n)
        self.exp_avg_sq = lr.new_zeros(lr.shape[0], n)

    @torch.no_grad()
    def step(self, params: Tensor, grad: Tensor) -> None:
        """One update of every row of ``params [K, n]`` from ``grad [K, n]``."""
        self.steps = [steps + 1 for steps in self.steps]
        if self.weight_decay != 0:
            grad = grad.add(params, alpha=self.weight_decay)
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        bias_correction1 = [1 - self.beta1**steps for steps in self.steps]
        bias_correction2_sqrt = [(1 - self.beta2**steps) ** 0.5 for steps in self.steps]
        if len(set(self.steps)) == 1:  # every row at one step: the solo update's scalar, exactly
            denom = (self.exp_avg_sq.sqrt() / bias_correction2_sqrt[0]).add_(self.eps)
        else:
            rows = torch.tensor(bias_correction2_sqrt, dtype=params.dtype, device=params.device)
            denom = (self.exp_avg_sq.sqrt() / rows[:, None]).add_(self.eps)
        # Adam's addcdiv_(exp_avg, denom, value=-step_size), with a step size per row: (value * a) / d
        pairs = zip(self.lr.tolist(), bias_correction1, strict=True)
        step_size = torch.tensor([-lr / correction for lr, correction in pairs], dtype=params.dtype)
        update = self.exp_avg * step_size.to(params.device)[:, None]
        params.add_(update.div_(denom))

    def keep(self, rows: Tensor) -> None:
        """Only the members at ``rows`` (indices into the current rows) stay."""
        self.lr, self.exp_avg, self.exp_avg_sq = self.lr[rows], self.exp_avg[rows], self.exp_avg_sq[rows]
        self.steps = [self.steps[row] for row in rows.tolist()]

    @torch.no_grad()
    def load_member(self, k: int, states: Sequence[dict], shapes: Sequence[tuple[int, int, tuple[int, ...]]]):
        """Row ``k`` takes a member's ``torch.optim.Adam`` state (per parameter, in row order; empty: a
        member that has not stepped yet): its moments and its count of steps."""
        if not any(states):
            return
        for state, (a, b, _) in zip(states, shapes, strict=True):
            self.exp_avg[k, a:b] = state["exp_avg"].reshape(-1)
            self.exp_avg_sq[k, a:b] = state["exp_avg_sq"].reshape(-1)
        self.steps[k] = int(float(states[0]["step"]))

    def member_state(self, k: int, shapes: Sequence[tuple[int, int, tuple[int, ...]]]) -> list[dict]:
        """Row ``k``'s moments as ``torch.optim.Adam`` keeps them per parameter (``shapes``: each
        parameter's ``(start, stop, shape)`` in a row), for the member's own optimiser state."""
        step = torch.tensor(float(self.steps[k]))
        return [
            {
                "step": step.clone(),
                "exp_avg": self.exp_avg[k, a:b].view(shape).clone(),
                "exp_avg_sq": self.exp_avg_sq[k, a:b].view(shape).clone(),
            }
            for a, b, shape in shapes
        ]


def finite_rows(x: Tensor) -> Tensor:
    """``[K]`` bool: whether every entry of row k of ``x [K, ...]`` is finite."""
    return torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
