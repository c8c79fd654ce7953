"""``neurogym``: any registered NeuroGym environment as a neuromod task (``task.env_id``).

Each batch row is one trial from the environment's own trial generator (``env.new_trial()``, then
``env.ob`` / ``env.gt`` and the env's period timing), not from NeuroGym's streaming ``Dataset`` (which
cannot be seeded, NeuroGym issue #282). Trials are padded with zeros to the longest one; the loss is
cross-entropy on the ground-truth action over the decision period, and the answer is read at the
decision period's last step.

NeuroGym is an optional extra: ``pip install -e '.[neurogym]'``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from neuromod import validation
from neuromod.tasks.base import Batch, Task

INSTALL_HINT = "task=neurogym needs the neurogym package: pip install -e '.[neurogym]'"


def _import_neurogym():
    try:
        import neurogym
        from neurogym.envs import registration
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    return neurogym, registration


def _channel_names(space: Any, size: int, prefix: str) -> list[str]:
    """Names of a space's channels from NeuroGym's ``space.name`` ({name: index or range}), else numbered."""
    names = [f"{prefix}_{i}" for i in range(size)]
    for name, index in (getattr(space, "name", None) or {}).items():
        indices = [index] if isinstance(index, (int, np.integer)) else list(index)
        for k, i in enumerate(indices):
            if 0 <= int(i) < size:
                names[int(i)] = name if len(indices) == 1 else f"{name}_{k}"
    return names


class NeuroGymTask(Task):
    """A NeuroGym environment with a discrete action space, one aligned trial per batch row.

    ``env_id``: a registered id (``DelayMatchSample-v0``, ...); ``dt`` (ms per step, null: the env's
    default) and ``kwargs`` go to ``neurogym.make``. ``decision_period``: the period whose ground truth
    is the answer (null: ``decision`` when the env has it, else the trial's last period).

    The environment's timing sets each trial's delay, so the delay keys do not apply: ``min_delay =
    max_delay = 0`` and ``Batch.delay`` is 0; the ``delay`` entry of ``Batch.periods`` (when the env has
    a delay period) gives each trial's actual delay.
    """

    name = "neurogym"
    answer_type = "class"
    has_own_loss = True

    def __init__(
        self,
        env_id: str = "DelayMatchSample-v0",
        dt: float | None = None,
        kwargs: dict | None = None,
        decision_period: str | None = None,
    ):
        super().__init__(0, 0, [0])
        neurogym, registration = _import_neurogym()
        env_kwargs = dict(kwargs or {})
        if validation.optional_number("task.dt", dt, positive=True) is not None:  # ms per step
            env_kwargs["dt"] = dt
        try:
            with warnings.catch_warnings():
                # gymnasium's note that NeuroGym's metadata lists no render modes: neuromod renders nothing
                warnings.filterwarnings("ignore", message=".*render_modes", category=UserWarning)
                env = neurogym.make(env_id, **env_kwargs)
        except Exception as error:  # gymnasium raises its own error types for unknown ids and kwargs
            known = sorted(registration.all_envs())
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(
                f"task.env_id={env_id!r} with task.kwargs={env_kwargs} cannot be made ({first}); "
                f"registered ids include {known[:8]}..."
            ) from None
        self.env = env.unwrapped
        self.env_id = env_id
        actions = self.env.action_space
        if not hasattr(actions, "n"):
            raise ValueError(
                f"task.env_id={env_id!r}: only discrete action spaces are supported, got {actions}"
            )
        self.n_actions = int(actions.n)
        self.input_names = _channel_names(
            self.env.observation_space, self.env.observation_space.shape[0], "ob"
        )
        self.output_names = _channel_names(actions, self.n_actions, "action")
        self.decision_period = decision_period
        self.name = f"neurogym:{env_id}"

    @property
    def chance_level(self) -> float:
        """One over the number of choices (actions other than ``fixation``)."""
        choices = self.n_actions - (1 if "fixation" in self.output_names else 0)
        return 1.0 / max(choices, 1)

    def held_out(self) -> dict:
        return {
            "by": "none",
            "why": "the environment draws its own trials: neuromod cannot keep any out of training",
        }

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator,
        delays: Tensor | None = None,
        split: str = "train",
    ) -> Batch:
        """``batch_size`` trials from the environment, seeded from ``generator`` (``delays`` is ignored:
        the environment's timing decides)."""
        return self._sample(batch_size, generator, None)

    def _trial(self) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[int, int]], str]:
        env = self.env
        env.new_trial()
        periods = {name: (int(env.start_ind[name]), int(env.end_ind[name])) for name in env.start_ind}
        decision = self.decision_period
        if decision is None:
            decision = "decision" if "decision" in periods else max(periods, key=lambda p: periods[p][1])
        if decision not in periods:
            raise ValueError(
                f"task.decision_period={decision!r} is not a period of {self.env_id}: "
                f"choose one of {list(periods)} (or null)"
            )
        return np.asarray(env.ob, dtype=np.float32), np.asarray(env.gt), periods, decision

    def _sample(self, batch_size: int, generator: torch.Generator, delays: Tensor | None) -> Batch:
        device = generator.device
        # NeuroGym's trial generator uses its own numpy RandomState: seed it from the torch generator so
        # the same seed gives the same batch, and each batch differs.
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator, device=device))
        self.env.seed(seed)
        # Trials come one by one from the environment (Python loop over trials while generating data,
        # not in a forward pass): NeuroGym builds each trial's timing and observations in numpy.
        trials = [self._trial() for _ in range(batch_size)]
        T = max(ob.shape[0] for ob, *_ in trials)
        D = len(self.input_names)
        inputs = np.zeros((T, batch_size, D), dtype=np.float32)
        actions = np.zeros((T, batch_size), dtype=np.int64)
        mask = np.zeros((T, batch_size), dtype=np.float32)
        query = np.zeros(batch_size, dtype=np.int64)
        names = sorted({name for _, _, periods, _ in trials for name in periods})
        spans = {name: np.zeros((batch_size, 2), dtype=np.int64) for name in [*names, "query"]}
        for b, (ob, gt, periods, decision) in enumerate(trials):
            if gt.ndim != 1:
                raise ValueError(f"task.env_id={self.env_id!r}: only scalar ground truth is supported")
            inputs[: ob.shape[0], b] = ob
            actions[: gt.shape[0], b] = gt
            start, stop = periods[decision]
            mask[start:stop, b] = 1.0
            query[b] = stop - 1
            for name, span in periods.items():
                spans[name][b] = span
            spans["query"][b] = (start, stop)
        actions_t = torch.from_numpy(actions).to(device)  # [T, B]
        query_t = torch.from_numpy(query).to(device)  # [B]
        answer = actions_t[query_t, torch.arange(batch_size, device=device)]  # [B]
        return Batch(
            inputs=torch.from_numpy(inputs).to(device),
            targets=F.one_hot(actions_t, self.n_actions).float(),  # [T, B, K]
            loss_weight=torch.from_numpy(mask).to(device),
            query_step=query_t,
            delay=torch.zeros(batch_size, dtype=torch.long, device=device),
            answer=answer,
            answer_mask=None,
            periods={name: torch.from_numpy(span).to(device) for name, span in spans.items()},
        )

    def loss(self, outputs: Tensor, batch: Batch, activity: Tensor | None = None) -> Tensor:
        """Cross-entropy on the ground-truth action at every step of the decision period."""
        T, B, K = outputs.shape
        per_step = F.cross_entropy(
            outputs.reshape(T * B, K), batch.targets.argmax(-1).reshape(T * B), reduction="none"
        ).reshape(T, B)
        return (per_step * batch.loss_weight).sum() / batch.loss_weight.sum().clamp(min=1)
