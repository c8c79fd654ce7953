"""Training K runs of one architecture together: one batched forward and backward pass over their stacked
parameters per step, each member on its own trials, with its own clip, Adam update, evaluations,
divergence and stop.

A member is a run built exactly as its solo run builds it (:func:`neuromod.runner.run.build_run`: network
and initial weights, task, training-trial generator, validation and test sets, optimiser settings). The
ensemble takes over the training loop; the member's own :class:`~neuromod.training.Trainer` keeps its
state as the solo loop would (``step``, ``history``, ``last_eval``, ``stopped``, the running loss, the
generator), and its network and optimiser receive the trained weights and Adam's moments whenever the
member is synced (:meth:`EnsembleTrainer.sync`): at the end, when it leaves, and every ``sync_every`` steps
(then its ``on_step`` hooks run: checkpoints).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from neuromod.ensemble.networks import EnsembleNetwork, MemberOutputs
from neuromod.ensemble.optim import StackedAdam, adam_settings, clip_rows, finite_rows
from neuromod.runner.run import RunObjects
from neuromod.tasks.base import Batch
from neuromod.training import Diverged, Trainer
from neuromod.training.loop import score
from neuromod.validation import ConfigError

#: Training settings every member of an ensemble shares (the shapes of a step and its schedule).
SHARED_SETTINGS = ("batch_size", "eval_every", "eval_at_start", "loss_kind")


@dataclass
class Stacked:
    """Trials of several members, padded at the end to the longest (padding steps weigh 0 and come after
    every query, so a member's outputs and gradients are those of its own trials)."""

    inputs: Tensor  # [K, T, B, D]
    query_step: Tensor  # [K, B]
    answer: Tensor  # [K, B]
    n_steps: list[int]  # each member's own trial length
    targets: Tensor | None = None  # [K, T, B, C] (the mse loss only)
    loss_weight: Tensor | None = None  # [K, T, B] (the mse loss only)

    @classmethod
    def of(cls, batches: Sequence[Batch], targets: bool = False) -> Stacked:
        """The members' ``batches`` stacked; ``targets``: with targets and loss weights too."""
        steps = [b.n_steps for b in batches]

        def padded(tensors: list[Tensor]) -> Tensor:  # along time (dim 0), with zeros
            out = tensors[0].new_zeros(len(tensors), max(steps), *tensors[0].shape[1:])
            for k, tensor in enumerate(tensors):
                out[k, : tensor.shape[0]].copy_(tensor)
            return out

        return cls(
            inputs=padded([b.inputs for b in batches]),
            query_step=torch.stack([b.query_step for b in batches]),
            answer=torch.stack([b.answer for b in batches]),
            n_steps=steps,
            targets=padded([b.targets for b in batches]) if targets else None,
            loss_weight=padded([b.loss_weight for b in batches]) if targets else None,
        )


def member_losses(outputs: Tensor, trials: Stacked, kind: str) -> Tensor:
    """Each member's training loss ``[K]`` from ``outputs [K, T, B, C]``: ``compute_loss`` of its own
    trials (``mse``: masked squared error; ``cross_entropy``: at each trial's query step)."""
    if kind == "mse":
        squared = ((outputs - trials.targets) ** 2).mean(dim=-1)  # [K, T, B]
        weight = trials.loss_weight
        return (squared * weight).sum((1, 2)) / weight.sum((1, 2)).clamp(min=1)
    K, _, B, C = outputs.shape
    members = torch.arange(K, device=outputs.device)[:, None]
    at_query = outputs[members, trials.query_step, torch.arange(B, device=outputs.device)]  # [K, B, C]
    loss = F.cross_entropy(at_query.reshape(K * B, C), trials.answer.reshape(-1), reduction="none")
    return loss.view(K, B).mean(dim=1)


class EnsembleTrainer:
    """Trains the members' runs together (see the module's docstring).

    Members may differ in ``seed`` (so in initial weights, trials, validation and test sets), in
    ``training.lr``, ``training.grad_clip``, ``training.stop_at_accuracy``, ``training.steps`` and the
    task's delays (:data:`~neuromod.ensemble.grouping.MEMBER_KEYS`); everything else that shapes a step
    must agree (:data:`SHARED_SETTINGS`, the architecture and its
    shapes, Adam's betas, eps and weight decay), else a ConfigError naming the key. Members that stop (the
    criterion reached, their last step, or diverged) leave the stacked tensors: they cost nothing after.

    Differences to a solo run: ``wall_time_s`` and ``elapsed_s`` are the ensemble's time; ``on_log`` hooks
    run at each evaluation as in a solo run, ``on_step`` hooks (after the member is synced) every
    ``sync_every`` steps (0: never) and at the member's last step, not after every step; there is no
    progress bar and no deferred Ctrl-C.
    """

    def __init__(self, members: Sequence[RunObjects], sync_every: int = 0):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = list(members)
        self.trainers: list[Trainer] = [m.trainer for m in self.members]
        self.sync_every = int(sync_every)
        first = self.trainers[0]
        for k, trainer in enumerate(self.trainers):
            for key in SHARED_SETTINGS:
                if getattr(trainer, key) != getattr(first, key):
                    name = "training.loss" if key == "loss_kind" else f"training.{key}"
                    raise ConfigError(
                        f"{name}: member {k} has {getattr(trainer, key)!r}, member 0 "
                        f"{getattr(first, key)!r}; members of an ensemble share it"
                    )
            if trainer.eval_batch.batch_size != first.eval_batch.batch_size:
                raise ConfigError("training.eval_batch_size: members of an ensemble share it")
            if (trainer.train_batch is None) != (first.train_batch is None):
                raise ConfigError("training.fixed_train_set: members of an ensemble share it")
        if first.loss_kind not in ("mse", "cross_entropy"):
            raise ConfigError(
                f"training.loss={first.loss_kind}: an ensemble trains with mse or cross_entropy"
            )
        self.network = EnsembleNetwork([m.model for m in self.members])
        settings = [adam_settings(t.optimizer) for t in self.trainers]
        for key in ("beta1", "beta2", "eps", "weight_decay"):
            if len({s[key] for s in settings}) > 1:
                raise ConfigError(f"training.optimizer: members differ in Adam's {key}; they must share it")
        device = self.members[0].device
        self.slices = [(start, stop) for _, _, start, stop in self.network.layout]
        self.flat = self.network.stack().to(device).requires_grad_()
        lr = torch.tensor([s["lr"] for s in settings], dtype=self.flat.dtype, device=device)
        shared = {key: settings[0][key] for key in ("beta1", "beta2", "eps", "weight_decay")}
        self.adam = StackedAdam(lr, n=self.network.n_params, **shared)
        shapes = [(start, stop, shape) for _, shape, start, stop in self.network.layout]
        for k, trainer in enumerate(self.trainers):  # a member resumed from its checkpoint: its moments
            optimizer = trainer.optimizer
            states = [optimizer.state.get(param, {}) for param in optimizer.param_groups[0]["params"]]
            self.adam.load_member(k, states, shapes)
        clip = [t.grad_clip if t.grad_clip else math.inf for t in self.trainers]
        self.max_norm = torch.tensor(clip, dtype=self.flat.dtype, device=device)
        #: The members still training, in the order of the stacked rows.
        self.active: list[int] = list(range(len(self.members)))
        #: Member index -> the divergence that ended it.
        self.diverged: dict[int, Diverged] = {}
        self._started = 0.0
        self._already: list[float] = [0.0] * len(self.members)

    # -- the loop -----------------------------------------------------------------------------------
    def fit(self) -> None:
        """Train every member until it reaches its ``steps``, its ``stop_at_accuracy``, or diverges."""
        self._started = time.perf_counter()
        self._already = [trainer.elapsed_s for trainer in self.trainers]  # a resumed member's time so far
        if self.trainers[0].eval_at_start:  # (as a solo run: not for a member resumed past step 0)
            fresh = [row for row, k in enumerate(self.active) if not self.trainers[k].step]
            fresh = [row for row in fresh if not self.trainers[self.active[row]].history]
            if fresh:
                self._evaluate(fresh, math.nan)
        self._leave([row for row, k in enumerate(self.active) if self._done(k)])
        while self.active:
            self.train_step()

    def train_step(self) -> None:
        """One update of every active member, then the evaluations due and the members that leave."""
        trainers = [self.trainers[k] for k in self.active]
        batches = [
            t.train_batch
            if t.train_batch is not None
            else t.task.training_batch(t.batch_size, t.generator, t.step)
            for t in trainers
        ]
        trials = Stacked.of(batches, targets=trainers[0].loss_kind == "mse")
        out = self.network.forward(self.flat, trials.inputs)
        loss = member_losses(out.outputs, trials, trainers[0].loss_kind)  # [A]
        values = loss.detach().tolist()
        finite = [math.isfinite(v) for v in values]
        bad = [row for row, ok in enumerate(finite) if not ok]
        for row in bad:  # as a solo run: recorded before its update, which never happens
            self._diverge(row, Diverged(trainers[row].step + 1, "the training loss"))
        if len(bad) < len(values):
            kept = torch.tensor(finite, device=loss.device)
            (grad,) = torch.autograd.grad(loss[kept].sum(), self.flat)
            clip_rows(grad, self.slices, self.max_norm)
            self.adam.step(self.flat.detach(), grad)
        now = time.perf_counter() - self._started
        due = []
        for row, trainer in enumerate(trainers):
            if not finite[row]:
                continue
            trainer.step += 1
            trainer.running_loss += values[row]
            trainer.running_count += 1
            trainer.elapsed_s = self._already[self.active[row]] + now
            if trainer.step % trainer.eval_every == 0 or trainer.step == trainer.steps:
                due.append(row)
        if due:
            self._evaluate(due)
        for row, trainer in enumerate(trainers):
            k = self.active[row]
            if k in self.diverged or not trainer.on_step:
                continue
            if self._done(k) or (self.sync_every and trainer.step % self.sync_every == 0):
                self._sync_row(row)
                try:
                    for hook in trainer.on_step:
                        hook(trainer)
                except Diverged as error:  # a checkpoint of non-finite weights: as in a solo run
                    self.diverged[k] = error
        self._leave([row for row, k in enumerate(self.active) if self._done(k)])

    def _done(self, k: int) -> bool:
        trainer = self.trainers[k]
        return k in self.diverged or trainer.stopped or trainer.step >= trainer.steps

    # -- evaluation -----------------------------------------------------------------------------------
    @torch.no_grad()
    def _evaluate(self, rows: list[int], train_loss: float | None = None) -> None:
        """Evaluate the members at ``rows`` on their own validation sets and log each one's row as its
        solo trainer does (``train_loss``: the running mean unless given). As a solo run's evaluation,
        in passes over ``batch_size`` trials (of every member at once), so that a pass never needs more
        memory than a training step; the kept outputs are every member's whole set."""
        trainers = [self.trainers[self.active[row]] for row in rows]
        batches = [t.eval_batch for t in trainers]
        index = torch.tensor(rows, device=self.flat.device)
        params = self.flat.detach()[index]
        inputs = Stacked.of(batches).inputs  # [K, T, n, D]
        size = trainers[0].batch_size
        chunks = range(0, inputs.shape[2], size)
        out = MemberOutputs.join(
            [self.network.forward(params, inputs[:, :, i : i + size], record=True) for i in chunks]
        )
        healthy = finite_rows(params).tolist()
        for j, (row, trainer, batch) in enumerate(zip(rows, trainers, batches, strict=True)):
            result = score(out.member(j, batch.n_steps), trainer.task, batch, trainer.loss_kind)
            if not math.isfinite(result.loss) or not healthy[j]:
                self._diverge(row, Diverged(trainer.step, "the evaluation loss or a parameter"))
                continue
            trainer.last_eval = result
            mean = trainer.running_loss / trainer.running_count if train_loss is None else train_loss
            log = {
                "step": trainer.step,
                "train_loss": mean,
                "eval_loss": result.loss,
                "eval_accuracy": result.accuracy,
                "chance_accuracy": trainer.task.chance_level,
                "wall_time_s": round(trainer.elapsed_s, 3),
                **result.extra,
            }
            trainer.history.append(log)
            for hook in trainer.on_log:
                hook(log)
            if train_loss is None:
                trainer.running_loss, trainer.running_count = 0.0, 0
            if trainer.stop_at_accuracy is not None and log["eval_accuracy"] >= trainer.stop_at_accuracy:
                trainer.stopped = True

    # -- members leaving ------------------------------------------------------------------------------
    def _diverge(self, row: int, error: Diverged) -> None:
        """Member at ``row`` diverged: its network receives the weights it has now, as a solo run's keeps
        them (a non-finite training loss: those before the update it would have made)."""
        k = self.active[row]
        self.diverged[k] = error
        self._sync_row(row)

    def _sync_row(self, row: int) -> None:
        """Copy the stacked row's weights and Adam moments into the member's own network and optimiser."""
        k = self.active[row]
        self.network.write_back(self.flat.detach()[row], k)
        shapes = [(start, stop, shape) for _, shape, start, stop in self.network.layout]
        optimizer = self.trainers[k].optimizer
        states = self.adam.member_state(row, shapes)
        for param, state in zip(optimizer.param_groups[0]["params"], states, strict=True):
            optimizer.state[param] = state

    def sync(self) -> None:
        """Copy every active member's weights and Adam moments into its own network and optimiser."""
        for row in range(len(self.active)):
            self._sync_row(row)

    def _leave(self, rows: list[int]) -> None:
        """The members at ``rows`` stop: synced (a diverged one already was), then dropped from the rows."""
        if not rows:
            return
        for row in rows:
            if self.active[row] not in self.diverged:
                self._sync_row(row)
        keep = [row for row in range(len(self.active)) if row not in rows]
        index = torch.tensor(keep, dtype=torch.long, device=self.flat.device)
        self.flat = self.flat.detach()[index].requires_grad_()
        self.adam.keep(index)
        self.max_norm = self.max_norm[index]
        self.active = [self.active[row] for row in keep]

    def status(self, k: int) -> str:
        """``diverged``, ``completed`` (its last step or its criterion) or ``training``."""
        if k in self.diverged:
            return "diverged"
        return "training" if k in self.active else "completed"
