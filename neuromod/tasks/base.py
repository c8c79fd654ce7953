"""What every task provides: aligned trials as tensors, plus the metadata metrics need."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from neuromod import validation

#: The three sets a run draws trials for. Training never sees a validation or test trial: tasks with a
#: finite space of trial contents split that space (:class:`ContentSplit`); the others draw continuous
#: stimuli, so that a repeat has probability zero (:meth:`Task.held_out`).
SPLITS = ("train", "validation", "test")


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    return split


@dataclass
class Batch:
    """One aligned trial per column. Steps after a trial's end are padding (``loss_weight`` 0)."""

    inputs: Tensor  # [T, B, D]
    targets: Tensor  # [T, B, K]
    loss_weight: Tensor  # [T, B] float weight of each step in the mse loss, 0 where the loss does not count
    query_step: Tensor  # [B] long, the step whose output is the answer
    delay: Tensor  # [B] long, steps between the end of the cue and the query
    answer: Tensor  # [B] long (class / choice index) or float (continuous value)
    answer_mask: Tensor | None = None  # [B, K] bool, channels the answer is chosen among ("class")
    periods: dict[str, Tensor] = field(default_factory=dict)  # name -> [B, 2] (start, stop) steps
    group: Tensor | None = None  # [B] long, the component task of each trial (multitask), else None
    #: What each trial asks the network to hold: name -> ``[B]`` (a class index or a stimulus value),
    #: e.g. the person of each slot or the stimulus. The population analyses decode it.
    content: dict[str, Tensor] = field(default_factory=dict)
    #: Per-trial facts a task's scoring needs beyond the answer (name -> ``[B, ...]``), e.g. which
    #: location gde's cue points at.
    info: dict[str, Tensor] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        return self.inputs.shape[0]

    @property
    def batch_size(self) -> int:
        return self.inputs.shape[1]

    def select(self, index: Tensor) -> Batch:
        """The trials ``index`` (a 1-D long tensor), in that order."""
        return Batch(
            inputs=self.inputs[:, index],
            targets=self.targets[:, index],
            loss_weight=self.loss_weight[:, index],
            query_step=self.query_step[index],
            delay=self.delay[index],
            answer=self.answer[index],
            answer_mask=None if self.answer_mask is None else self.answer_mask[index],
            periods={k: v[index] for k, v in self.periods.items()},
            group=None if self.group is None else self.group[index],
            content={k: v[index] for k, v in self.content.items()},
            info={k: v[index] for k, v in self.info.items()},
        )

    def at_query(self, outputs: Tensor) -> Tensor:
        """``outputs [T, B, K]`` -> the outputs at each trial's query step ``[B, K]``."""
        columns = torch.arange(outputs.shape[1], device=outputs.device)
        return outputs[self.query_step, columns]


class Task:
    """Base class of a task. Subclasses fill the attributes below and implement :meth:`_sample`."""

    name: str = "task"
    answer_type: str = "class"
    #: For ``answer_type == "choice"``: the values the output is compared against.
    choice_values: tuple[float, ...] = ()
    #: For ``answer_type == "continuous"``: an answer is correct if |output - answer| < tolerance.
    tolerance: float = 0.1
    #: Input encoding, for architectures that need a particular one (``factorial``).
    encoding: str | None = None

    def __init__(
        self,
        min_delay: int,
        max_delay: int,
        eval_delays: list[int] | None = None,
        test_delays: list[int] | None = None,
    ):
        self.min_delay, self.max_delay = validation.delay_range(min_delay, max_delay)
        chosen = validation.eval_delays(eval_delays)
        #: Delays of the validation set (training watches it, the stop criterion and tuning read it).
        self.eval_delays = list(range(self.min_delay, self.max_delay + 1)) if chosen is None else chosen
        tested = validation.eval_delays(test_delays, "task.test_delays")
        #: Delays of the test set, scored once after training: by default the validation delays; set it
        #: beyond the training range to measure retention there without the run ever selecting on it.
        self.test_delays = list(self.eval_delays) if tested is None else tested

    # -- description -------------------------------------------------------------------------------
    input_names: list[str] = []
    output_names: list[str] = []

    @property
    def input_size(self) -> int:
        return len(self.input_names)

    @property
    def output_size(self) -> int:
        return len(self.output_names)

    @property
    def chance_level(self) -> float:
        """Accuracy of a guess that ignores the stimulus."""
        raise NotImplementedError

    #: Weight of the response steps (the query, and the cue echo) in the masked mse loss relative to the
    #: other steps: targets are zero almost everywhere, and without emphasis the few steps that carry the
    #: answer barely move the loss (measured on cue_go: 10 reaches 1.0 within 100 steps, 1 is still at
    #: chance after 150).
    response_weight: float = 1.0

    def _loss_weights(self, n_steps: int, last_step: Tensor, response_steps: list[Tensor]) -> Tensor:
        """``[T, B]``: 1 up to and including ``last_step [B]``, ``response_weight`` at each of
        ``response_steps`` (each ``[B]``), 0 after the trial's end."""
        device = last_step.device
        steps = torch.arange(n_steps, device=device)[:, None]  # [T, 1]
        weights = (steps <= last_step[None, :]).float()  # [T, B]
        columns = torch.arange(last_step.shape[0], device=device)
        for step in response_steps:
            weights[step.to(device).expand_as(last_step), columns] = self.response_weight
        return weights

    # -- trials ------------------------------------------------------------------------------------
    def sample(
        self,
        batch_size: int,
        generator: torch.Generator,
        delays: Tensor | None = None,
        split: str = "train",
    ) -> Batch:
        """``batch_size`` fresh trials drawn with ``generator``. ``delays [B]`` fixes each trial's delay
        (for evaluation); otherwise delays are uniform in ``[min_delay, max_delay]``. ``split`` says which
        set the trials are for (``train``, ``validation`` or ``test``): a task with a finite content space
        draws each set's trials from its own part of it (:meth:`held_out`)."""
        check_split(split)
        device = generator.device
        if delays is None:
            delays = torch.randint(
                self.min_delay, self.max_delay + 1, (batch_size,), generator=generator, device=device
            )
        else:
            delays = torch.as_tensor(delays, dtype=torch.long, device=device)
            if delays.shape != (batch_size,):
                raise ValueError(f"delays must have shape ({batch_size},), got {tuple(delays.shape)}")
        return self._sample(batch_size, generator, delays, split)

    def _sample(self, batch_size: int, generator: torch.Generator, delays: Tensor, split: str) -> Batch:
        raise NotImplementedError

    def held_out(self) -> dict:
        """How this task keeps validation and test trials out of training, for ``summary.json``:
        ``{"by": "content", ...}`` (the content space is split; sizes of each part), ``{"by":
        "continuous", "why": ...}`` (stimuli are drawn from continuous distributions: two trials coincide
        with probability zero) or ``{"by": "none", "why": ...}`` (every trial can occur in training)."""
        return {"by": "continuous", "why": "stimuli drawn from continuous distributions"}

    def training_batch(self, batch_size: int, generator: torch.Generator, step: int) -> Batch:
        """The batch of training step ``step`` (0-based): fresh trials (:meth:`sample`). A task whose
        batches follow a schedule over the steps (the multitask's turns) overrides it."""
        return self.sample(batch_size, generator)

    def trial_groups(self, batch: Batch) -> dict[str, Tensor]:
        """Name -> indices ``[b]`` of trials scored apart (a multitask's component tasks); the end-of-run
        analyses are repeated per group under ``<metric>_<name>``. Empty for a single task."""
        return {}

    # -- scoring ---------------------------------------------------------------------------------------
    def predict(self, outputs: Tensor, batch: Batch) -> Tensor:
        """The network's answer per trial ``[B]`` from ``outputs [T, B, K]``. A class answer is the argmax
        over every answer channel: with the factorial encoding the channels of every slot compete, so
        the network must read the query to be right (``Batch.answer_mask`` is not used here; see
        :meth:`masked_correct`)."""
        at_query = batch.at_query(outputs)  # [B, K]
        if self.answer_type == "class":
            return at_query.argmax(dim=-1)
        if self.answer_type == "choice":
            choices = torch.tensor(self.choice_values, device=outputs.device, dtype=outputs.dtype)
            return (at_query[:, :1] - choices).abs().argmin(dim=-1)
        return at_query[:, 0]

    def correct(self, outputs: Tensor, batch: Batch) -> Tensor:
        """Whether each trial was answered correctly ``[B]`` bool."""
        prediction = self.predict(outputs, batch)
        if self.answer_type == "continuous":
            return (prediction - batch.answer).abs() < self.tolerance
        return prediction == batch.answer

    def masked_correct(self, outputs: Tensor, batch: Batch) -> Tensor | None:
        """Correct when the answer is chosen only among ``Batch.answer_mask``'s channels (the queried
        slot's, with the factorial encoding): a figure that a network ignoring the query can reach, kept
        as ``masked_accuracy`` for comparison. None when the mask leaves every channel in."""
        mask = batch.answer_mask
        if self.answer_type != "class" or mask is None or bool(mask.all()):
            return None
        scores = batch.at_query(outputs).masked_fill(~mask, float("-inf"))
        return scores.argmax(dim=-1) == batch.answer

    # -- controls ------------------------------------------------------------------------------------
    #: Whether the input at the answer step is a cue that says what (or when) to answer: a query, a go
    #: or a report signal. Such tasks get :meth:`without_query` (the query ablation).
    has_query_cue: bool = False

    def without_query(self, batch: Batch) -> Batch | None:
        """The same trials with every input at the answer step set to zero (the query, go or report cue
        removed; nothing else is shown there). A network that reads the cue falls to chance on them.
        None for tasks without such a cue."""
        if not self.has_query_cue:
            return None
        inputs = batch.inputs.clone()
        inputs[batch.query_step, torch.arange(batch.batch_size, device=inputs.device)] = 0.0
        return replace(batch, inputs=inputs)

    def with_other_query(self, batch: Batch, generator: torch.Generator) -> Batch | None:
        """The same trials asking for another item than the one scored (e.g. another slot): a network
        that answers what the query asks scores only when both items happen to share the answer. None
        for tasks whose query cannot name another item."""
        return None

    def with_shuffled_cues(self, batch: Batch, generator: torch.Generator) -> Batch | None:
        """The same trials with the cue period's inputs taken from other trials (a random permutation;
        answers unchanged): a network that holds what was cued falls to chance. None when the task has
        no cue period common to all trials."""
        cue = batch.periods.get("cue")
        if cue is None or batch.batch_size < 2 or not bool((cue == cue[:1]).all()):
            return None
        start, stop = int(cue[0, 0]), int(cue[0, 1])
        order = torch.randperm(batch.batch_size, generator=generator, device=generator.device)
        order = order.to(batch.inputs.device)
        inputs = batch.inputs.clone()
        inputs[start:stop] = batch.inputs[start:stop, order]
        return replace(batch, inputs=inputs)

    def graded_stimulus(self, batch: Batch) -> tuple[str, Tensor] | None:
        """For a binary choice that depends on a graded stimulus: its name and value per trial ``[B]``
        (the psychometric curve's x axis). None for tasks without one."""
        return None

    def extra_metrics(self, outputs: Tensor, batch: Batch) -> dict[str, float]:
        """Task-specific scalar metrics of an evaluation (e.g. ``info_loss``); they go to
        ``metrics.csv`` and ``summary.json``'s ``final`` under these names."""
        return {}

    def analysis_last_step(self, batch: Batch) -> Tensor:
        """``[B]``: the last step of each trial the activity analyses (sequentiality index) cover: the
        query step (later steps are padding or after the answer)."""
        return batch.query_step

    # -- loss --------------------------------------------------------------------------------------
    #: Whether :meth:`loss` is implemented (``training.loss=task``).
    has_own_loss: bool = False

    @property
    def default_loss(self) -> str:
        """The loss ``training.loss=auto`` picks for this task."""
        if self.has_own_loss:
            return "task"
        return "cross_entropy" if self.answer_type == "class" else "mse"

    def loss(self, outputs: Tensor, batch: Batch, activity: Tensor | None = None) -> Tensor:
        """The task's own differentiable loss (scalar), for tasks with ``has_own_loss``. ``activity
        [T, B, N]`` is the network's activity (for penalties on it)."""
        raise NotImplementedError
