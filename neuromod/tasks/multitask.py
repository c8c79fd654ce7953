"""Orhan & Ma's (2019) multitask condition: one network trained on several of their tasks at once
(``task=multitask task.tasks=[de1,cd,afc2]``).

Each component task is built from its own ``config/task/<name>.yaml``, with the multitask's shared trial
settings (``task.delay``, ``task.delays``, ... when not null) and ``task.per_task.<name>`` on top. A trial of
the multitask is a trial of one component:

- inputs ``[T, B, D + n]``: the component's channels, zero-padded to the widest component (channels are
  shared by position, as the paper's networks share their 50 input units between tasks), then one
  task-identity channel per component, 1 from the trial's first step to its end for its own task;
- outputs: one block of output units per component (``<task>.<output>``); a trial's targets, loss and
  score use only its task's block;
- trials shorter than the batch's longest are zero-padded (loss weight 0).

Training batches follow ``task.schedule``: ``alternate`` (the batch of step k is all from task k mod n),
``mixed`` (every batch holds every task in turn, trial after trial) or ``sequential`` (``task.block_steps``
steps on each task in turn, then the last one on: the original code's curriculum). The evaluation and test
sets are mixed. Each task is scored with its own metrics, reported as ``<metric>_<task>``.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor

from neuromod import validation
from neuromod.tasks.base import Batch, Task
from neuromod.tasks.orhan_ma_base import OrhanMaTask

SCHEDULES = ("alternate", "mixed", "sequential")
#: Trial settings the multitask passes to every component when they are not null.
SHARED_KEYS = (
    "delay",
    "delays",
    "eval_delays",
    "test_delays",
    "stimulus_steps",
    "response_steps",
    "tethered",
    "dynamic_input",
)


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _task_class(target: Any) -> type | None:
    """The class a task config's ``_target_`` names, or None when it cannot be imported."""
    module, _, name = str(target).rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def _task_dir() -> Path:
    from neuromod.paths import CONFIG_DIR

    return CONFIG_DIR / "task"


def orhan_ma_task_names(task_dir: Path | None = None) -> list[str]:
    """The options of ``config/task/`` that build an Orhan & Ma task (the tasks a multitask may combine)."""
    names = []
    for path in sorted(Path(task_dir or _task_dir()).glob("*.yaml")):
        cls = _task_class(OmegaConf.load(path).get("_target_"))
        if isinstance(cls, type) and issubclass(cls, OrhanMaTask):
            names.append(path.stem)
    return names


def build_component(name: str, settings: dict[str, Any], task_dir: Path | None = None) -> OrhanMaTask:
    """The Orhan & Ma task of ``config/task/<name>.yaml`` with ``settings`` on top (ValueError naming
    ``task.tasks`` or ``task.per_task`` when it cannot be built)."""
    task_dir = Path(task_dir or _task_dir())
    path = task_dir / f"{name}.yaml"
    allowed = ", ".join(orhan_ma_task_names(task_dir))
    if not isinstance(name, str) or not path.is_file():
        raise ValueError(f"task.tasks: unknown task {name!r}; choose Orhan & Ma tasks among {allowed}")
    node = _plain(OmegaConf.load(path))
    cls = _task_class(node.pop("_target_", None))
    if not (isinstance(cls, type) and issubclass(cls, OrhanMaTask)):
        raise ValueError(f"task.tasks: {name} is not an Orhan & Ma task; choose among {allowed}")
    node.update(settings)
    try:
        return cls(**node)
    except TypeError as error:
        raise ValueError(f"task.per_task.{name}: {validation.first_line(error)}") from None
    except ValueError as error:
        raise ValueError(f"task.tasks: {name}: {validation.first_line(error)}") from None


class MultiTask(Task):
    """Several Orhan & Ma tasks for one network: a task-identity input, an output block and a loss per
    task, batches interleaved by ``schedule``. ``tasks``: config names (``de1``) or built tasks."""

    name = "multitask"
    answer_type = "mixed"
    has_own_loss = True

    def __init__(
        self,
        tasks: list,
        schedule: str = "alternate",
        block_steps: int | None = None,
        per_task: dict[str, dict] | None = None,
        **shared: Any,
    ):
        tasks, per_task = _plain(tasks), _plain(per_task) or {}
        if isinstance(tasks, (str, bytes)) or not isinstance(tasks, list) or not tasks:
            raise ValueError(
                f"task.tasks={tasks!r} is not allowed: list one or more tasks, e.g. [de1,cd,afc2]"
            )
        self.schedule = validation.choice("task.schedule", schedule, SCHEDULES)
        if schedule == "sequential" or block_steps is not None:
            validation.integer("task.block_steps", block_steps, minimum=1)
        self.block_steps = block_steps
        unknown = set(shared) - set(SHARED_KEYS)
        if unknown:
            raise ValueError(f"task.{sorted(unknown)[0]} is not a multitask setting (shared: {SHARED_KEYS})")
        common = {k: _plain(v) for k, v in shared.items() if v is not None}
        names = [t if isinstance(t, str) else getattr(t, "name", repr(t)) for t in tasks]
        if not isinstance(per_task, dict) or set(per_task) - set(names):
            raise ValueError(f"task.per_task={per_task!r}: its keys must be names in task.tasks ({names})")
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"task.tasks={names}: {name} is listed twice")
        self.components: list[OrhanMaTask] = [
            build_component(t, {**common, **(per_task.get(t) or {})}) if isinstance(t, str) else t
            for t in tasks
        ]
        for name, task in zip(names, self.components, strict=True):
            if not isinstance(task, OrhanMaTask):
                raise ValueError(f"task.tasks: {name} is not an Orhan & Ma task")
        self.task_names = names
        first = self.components[0]
        for name, task in zip(names[1:], self.components[1:], strict=True):
            if task.delays != first.delays or list(task.eval_delays) != list(first.eval_delays):
                raise ValueError(
                    f"task.tasks: {names[0]} and {name} have different delays ({first.delays} and "
                    f"{task.delays}); set them for every task with task.delay or task.delays"
                )
        super().__init__(first.min_delay, first.max_delay, list(first.eval_delays), list(first.test_delays))
        self.delays = list(first.delays)
        self.width = max(task.input_size for task in self.components)
        # Trial i of a mixed batch is from task mix_order[i mod n]: the longest trials first, so that a
        # one-trial probe (checks.check_task, memory.check_memory) sees the longest trial.
        lengths = [task.stimulus_steps + task.response_steps for task in self.components]
        self.mix_order = sorted(range(len(lengths)), key=lambda k: -lengths[k])
        self.input_names = [*_shared_names(self.components, self.width), *(f"task_{n}" for n in names)]
        self.output_names = [
            f"{n}.{o}" for n, task in zip(names, self.components, strict=True) for o in task.output_names
        ]
        ends = torch.tensor([task.output_size for task in self.components]).cumsum(0).tolist()
        self.output_slices = [
            slice(end - task.output_size, end) for end, task in zip(ends, self.components, strict=True)
        ]

    @property
    def chance_level(self) -> float:
        """The mean of the tasks' chance levels (the evaluation and test sets hold every task equally)."""
        return sum(task.chance_level for task in self.components) / len(self.components)

    # -- trials ------------------------------------------------------------------------------------
    def task_at(self, step: int) -> int:
        """The component whose trials make up the batch of training step ``step`` (``alternate`` and
        ``sequential``)."""
        if self.schedule == "sequential":
            return min(step // self.block_steps, len(self.components) - 1)
        return step % len(self.components)

    def training_batch(self, batch_size: int, generator: torch.Generator, step: int) -> Batch:
        if self.schedule == "mixed":
            return self.sample(batch_size, generator)
        k = self.task_at(step)
        every = torch.arange(batch_size, device=generator.device)
        return self._combine([(k, every, self.components[k].sample(batch_size, generator))], batch_size)

    def held_out(self) -> dict:
        return {"by": "components", "tasks": {task.name: task.held_out() for task in self.components}}

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator,
        delays: Tensor | None = None,
        split: str = "train",
    ) -> Batch:
        """A mixed batch: trial i from task ``mix_order[i mod n]`` (so a sorted ``delays [B]`` spreads over
        every task; ``mix_order`` is 0, 1, ... unless the tasks' trials differ in length),
        each task's trials drawn by that task in turn from ``generator``."""
        device = generator.device
        if delays is not None:
            delays = torch.as_tensor(delays, dtype=torch.long, device=device)
            if delays.shape != (batch_size,):
                raise ValueError(f"delays must have shape ({batch_size},), got {tuple(delays.shape)}")
        order = torch.tensor(self.mix_order, device=device)
        group = order[torch.arange(batch_size, device=device) % len(order)]  # [B]
        parts = []
        for k, task in enumerate(self.components):
            index = (group == k).nonzero().squeeze(1)
            if len(index):
                chosen = None if delays is None else delays[index]
                parts.append((k, index, task.sample(len(index), generator, chosen, split)))
        return self._combine(parts, batch_size)

    def _combine(self, parts: list[tuple[int, Tensor, Batch]], batch_size: int) -> Batch:
        """One batch of ``batch_size`` trials from each component's ``(k, index [b], batch)``."""
        n, B, D = len(self.components), batch_size, self.width
        T = max(part.n_steps for _, _, part in parts)
        device = parts[0][2].inputs.device
        inputs = torch.zeros(T, B, D + n, device=device)
        targets = torch.zeros(T, B, self.output_size, device=device)
        loss_weight = torch.zeros(T, B, device=device)
        long = {"query_step": torch.zeros(B, dtype=torch.long, device=device)}
        long.update(delay=long["query_step"].clone(), group=long["query_step"].clone())
        answer = torch.zeros(B, device=device)
        shared = set.intersection(*(set(part.periods) for _, _, part in parts))
        periods = {name: torch.zeros(B, 2, dtype=torch.long, device=device) for name in sorted(shared)}
        info: dict[str, Tensor] = {}
        for k, index, part in parts:
            t = part.n_steps
            inputs[:t, index, : part.inputs.shape[-1]] = part.inputs
            end = part.periods["query"][:, 1] if "query" in part.periods else torch.full_like(index, t)
            inputs[:t, index, D + k] = (torch.arange(t, device=device)[:, None] < end[None, :]).float()
            targets[:t, index, self.output_slices[k]] = part.targets
            loss_weight[:t, index] = part.loss_weight
            long["query_step"][index], long["delay"][index] = part.query_step, part.delay
            long["group"][index] = k
            answer[index] = part.answer.float()
            for name in periods:
                periods[name][index] = part.periods[name]
            for name, value in part.info.items():  # a component's scoring facts (gde's cued location)
                if name not in info:
                    info[name] = value.new_zeros((B, *value.shape[1:]))
                info[name][index] = value
        # What the population analyses decode from a multitask: which task each trial is.
        content = {"task": long["group"].clone()}
        return Batch(
            inputs, targets, loss_weight, answer=answer, periods=periods, content=content, info=info, **long
        )

    def views(self, batch: Batch, outputs: Tensor | None = None):
        """Per component present in ``batch``: ``(k, index [b], its trials as the component made them,
        outputs [T, b, K_k] of its block or None)``."""
        for k, task in enumerate(self.components):
            index = (batch.group == k).nonzero().squeeze(1)
            if not len(index):
                continue
            trials = batch.select(index)
            answer = trials.answer if task.answer_type == "continuous" else trials.answer.long()
            trials = replace(
                trials,
                inputs=trials.inputs[..., : task.input_size],
                targets=trials.targets[..., self.output_slices[k]],
                answer=answer,
                group=None,
                content={},
            )
            block = None if outputs is None else outputs[:, index, self.output_slices[k]]
            yield k, index, trials, block

    def analysis_last_step(self, batch: Batch) -> Tensor:
        """Each trial's own task's last analysed step ``[B]``."""
        last = batch.query_step.clone()
        for k, index, trials, _ in self.views(batch):
            last[index] = self.components[k].analysis_last_step(trials)
        return last

    def trial_groups(self, batch: Batch) -> dict[str, Tensor]:
        return {self.task_names[k]: index for k, index, _, _ in self.views(batch)}

    # -- scoring -----------------------------------------------------------------------------------
    def predict(self, outputs: Tensor, batch: Batch) -> Tensor:
        raise NotImplementedError("a multitask's answers differ per task: use correct() or views()")

    def correct(self, outputs: Tensor, batch: Batch) -> Tensor:
        """Each trial scored by its own task on its task's output block ``[B]`` bool."""
        result = torch.zeros(batch.batch_size, dtype=torch.bool, device=outputs.device)
        for k, index, trials, block in self.views(batch, outputs):
            result[index] = self.components[k].correct(block, trials)
        return result

    def extra_metrics(self, outputs: Tensor, batch: Batch) -> dict[str, float]:
        """Per task: ``accuracy_<task>`` (trials in the training delay range), ``chance_accuracy_<task>``,
        ``loss_<task>`` (its response-period loss, without the activity penalty) and its own metrics as
        ``<metric>_<task>`` (``info_loss_de1``...); ``info_loss``: their mean over the tasks."""
        metrics: dict[str, float] = {}
        info_losses = []
        for k, _, trials, block in self.views(batch, outputs):
            task, name = self.components[k], self.task_names[k]
            correct = task.correct(block, trials).float()
            in_range = (trials.delay >= self.min_delay) & (trials.delay <= self.max_delay)
            pool = correct[in_range] if bool(in_range.any()) else correct
            metrics[f"accuracy_{name}"] = float(pool.mean())
            metrics[f"chance_accuracy_{name}"] = task.chance_level
            metrics[f"loss_{name}"] = float(task.loss(block.detach(), trials))
            own = task.extra_metrics(block, trials)
            metrics.update({f"{metric}_{name}": value for metric, value in own.items()})
            if "info_loss" in own:
                info_losses.append(own["info_loss"])
        if info_losses:
            metrics = {"info_loss": sum(info_losses) / len(info_losses), **metrics}
        return metrics

    def loss(self, outputs: Tensor, batch: Batch, activity: Tensor | None = None) -> Tensor:
        """The mean over the tasks in ``batch`` of each task's own loss on its trials and output block
        (with its activity penalty on those trials' ``activity [T, b, N]``)."""
        losses = [
            self.components[k].loss(block, trials, None if activity is None else activity[:, index])
            for k, index, trials, block in self.views(batch, outputs)
        ]
        return torch.stack(losses).mean()

    # -- controls ----------------------------------------------------------------------------------
    def with_shuffled_cues(self, batch: Batch, generator: torch.Generator) -> Batch | None:
        """Cues swapped between trials of the same task (the task-identity input stays the trial's own)."""
        inputs, shuffled_any = batch.inputs.clone(), False
        for _, index, _, _ in self.views(batch):
            shuffled = super().with_shuffled_cues(batch.select(index), generator)
            if shuffled is not None:
                inputs[:, index] = shuffled.inputs
                shuffled_any = True
        return replace(batch, inputs=inputs) if shuffled_any else None


def _shared_names(tasks: list[Task], width: int) -> list[str]:
    """Names of the ``width`` shared input channels: a channel's name where every task that has it names
    it alike, else ``input_<i>``."""
    names = []
    for i in range(width):
        seen = {task.input_names[i] for task in tasks if i < task.input_size}
        names.append(seen.pop() if len(seen) == 1 else f"input_{i:03d}")
    return names
