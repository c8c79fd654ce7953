"""Several runs of one architecture trained together in one process, as one batched computation: the
members' parameters stacked with a leading member dimension (:mod:`.networks`, on the member-batched
recurrence of :mod:`.kernels`), one forward and backward pass per step, a per-member clip and Adam
(:mod:`.optim`), per-member evaluations, divergence and stop (:mod:`.trainer`)."""

from neuromod.ensemble.networks import FORWARDS, EnsembleNetwork, MemberOutputs
from neuromod.ensemble.trainer import EnsembleTrainer

__all__ = ["FORWARDS", "EnsembleNetwork", "EnsembleTrainer", "MemberOutputs"]
