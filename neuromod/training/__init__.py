"""Training: losses, evaluation and the loop."""

from neuromod.training.loop import (
    Diverged,
    EvalResult,
    Trainer,
    compute_loss,
    eval_delays_tensor,
    evaluate,
    resolve_loss,
)

__all__ = [
    "Diverged",
    "EvalResult",
    "Trainer",
    "compute_loss",
    "eval_delays_tensor",
    "evaluate",
    "resolve_loss",
]
