"""Training: losses (:mod:`.losses`), evaluation and the loop (:mod:`.loop`)."""

from neuromod.training.loop import (
    Diverged,
    EvalResult,
    Trainer,
    eval_delays_tensor,
    evaluate,
)
from neuromod.training.losses import LOSSES, compute_loss, resolve_loss

__all__ = [
    "LOSSES",
    "Diverged",
    "EvalResult",
    "Trainer",
    "compute_loss",
    "eval_delays_tensor",
    "evaluate",
    "resolve_loss",
]
