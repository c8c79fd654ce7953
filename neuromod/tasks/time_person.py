"""``time_person``: who had which time slot? Cue the slots, wait, query one slot, answer its person.

Trial periods: lead (``lead`` steps of silence), cue, delay (``delay`` empty steps), query (one step).

- ``encoding="additive"``: inputs are person one-hot ++ slot one-hot (D = P + S); the slots are cued one
  per step in random order; the query is the slot's one-hot; outputs are the P people.
- ``encoding="factorial"``: one channel per person-in-slot (D = K = P * S, grouped by slot); all cues at one
  step; the query is ``query_amplitude`` on every channel of the queried slot; the answer is the person's
  channel within that slot's group.

Held out by construction: which person had each slot (one of ``len(people) ** len(slots)`` assignments) is
split once, from ``holdout_seed``, into training, validation and test assignments
(:class:`~neuromod.tasks.split.ContentSplit`; ``holdout_validation``, ``holdout_test`` are the fractions).
The cue order and the queried slot are drawn freely; a validation or test trial's assignment is never
shown in training, so no such trial can occur there and the test accuracy is generalisation to unseen
combinations.

Targets are ``target_amplitude`` at the cue echo and at the answer, 0 elsewhere. ``trial_steps`` (null by
default) makes every trial at least that long and counts every step of it in the mse loss, so the network
must also stay silent after the query (the seed's recipe: 25 steps, targets 0 after the query).

Distraction (both 0 by default): ``distractors`` person-only flashes during the delay (additive encoding:
a person's channel at ``cue_amplitude`` with no slot, at distinct random delay steps; a trial whose delay
is shorter gets one per step), which a network that keeps "the last person seen" confuses with a cue; and
``delay_noise``, the std of Gaussian noise added to every input channel at every delay step. Both are
drawn from the batch's generator (same seed, same trials) and apply to every split.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from neuromod import validation
from neuromod.tasks.base import Batch, Task
from neuromod.tasks.split import ContentSplit

ENCODINGS = ("additive", "factorial")


class TimePerson(Task):
    name = "time_person"
    has_query_cue = True
    answer_type = "class"

    def __init__(
        self,
        people: list[str] = ("Laura", "Joram", "Denis", "Felix"),
        slots: list[str] = ("9am", "10am", "11am"),
        cue_amplitude: float = 0.8,
        query_amplitude: float | None = None,
        target_amplitude: float = 1.0,
        trial_steps: int | None = None,
        lead: int = 2,
        min_delay: int = 1,
        max_delay: int = 20,
        eval_delays: list[int] | None = None,
        test_delays: list[int] | None = None,
        encoding: str = "additive",
        echo_cues: bool = True,
        response_weight: float = 10.0,
        holdout_validation: float = 0.125,
        holdout_test: float = 0.25,
        holdout_seed: int = 0,
        distractors: int = 0,
        delay_noise: float = 0.0,
    ):
        super().__init__(min_delay, max_delay, eval_delays, test_delays)
        validation.choice("task.encoding", encoding, ENCODINGS)
        validation.at_least_items("task.people", people, 2, "names")
        validation.at_least_items("task.slots", slots, 1, "names")
        validation.integer("task.lead", lead, minimum=0)
        self.people = [str(p) for p in people]
        self.slots = [str(s) for s in slots]
        self.cue_amplitude = float(cue_amplitude)
        default_query = 1.0 if encoding == "additive" else 0.5
        self.query_amplitude = default_query if query_amplitude is None else float(query_amplitude)
        self.target_amplitude = float(
            validation.number("task.target_amplitude", target_amplitude, positive=True)
        )
        if trial_steps is not None:
            validation.integer("task.trial_steps", trial_steps, minimum=1)
        self.trial_steps = trial_steps
        validation.number("task.response_weight", response_weight, positive=True)
        self.response_weight = float(response_weight)
        self.lead = int(lead)
        validation.integer("task.distractors", distractors, minimum=0)
        if distractors and encoding != "additive":
            raise validation.ConfigError(
                f"task.distractors={distractors} needs task.encoding=additive (a distractor is a person "
                "shown without a slot); use task.delay_noise with the factorial encoding"
            )
        self.distractors = int(distractors)
        self.delay_noise = float(validation.number("task.delay_noise", delay_noise, at_least=0.0))
        self.encoding = encoding
        self.echo_cues = bool(echo_cues)
        n_people, n_slots = len(self.people), len(self.slots)
        if encoding == "additive":
            self.input_names = self.people + self.slots
            self.output_names = list(self.people)
            self.cue_steps = n_slots
        else:
            self.input_names = [f"{p}@{s}" for s in self.slots for p in self.people]
            self.output_names = list(self.input_names)
            self.cue_steps = 1
        self.n_people, self.n_slots = n_people, n_slots
        self.split = ContentSplit(n_people**n_slots, holdout_validation, holdout_test, holdout_seed)

    def held_out(self) -> dict:
        return {**self.split.describe(), "content": "the person of every slot"}

    def assignments(self, codes: Tensor) -> Tensor:
        """Content codes ``[B]`` -> the person of each slot ``[B, S]`` (code = sum_i person_i P^i)."""
        powers = self.n_people ** torch.arange(self.n_slots, device=codes.device)
        return (codes[:, None] // powers) % self.n_people

    def codes(self, person_of_slot: Tensor) -> Tensor:
        """The person of each slot ``[B, S]`` -> content codes ``[B]``."""
        powers = self.n_people ** torch.arange(self.n_slots, device=person_of_slot.device)
        return (person_of_slot.long() * powers).sum(dim=1)

    @property
    def chance_level(self) -> float:
        return 1.0 / self.n_people

    def n_steps_for(self, max_delay: int) -> int:
        """Trial length when the longest delay in the batch is ``max_delay`` (at least ``trial_steps``)."""
        return max(self.lead + self.cue_steps + max_delay + 1, self.trial_steps or 0)

    def _sample(self, batch_size: int, generator: torch.Generator, delays: Tensor, split: str) -> Batch:
        device = generator.device
        B, P, S = batch_size, self.n_people, self.n_slots
        T = self.n_steps_for(int(delays.max()))
        trials = torch.arange(B, device=device)
        # Who had each slot (with replacement, from this split's assignments), the cue order of the slots,
        # and the queried slot.
        person_of_slot = self.assignments(self.split.draw(B, split, generator))  # [B, S]
        order = torch.rand(B, S, generator=generator, device=device).argsort(dim=1)  # [B, S]
        queried = torch.randint(S, (B,), generator=generator, device=device)  # [B]
        answer_person = person_of_slot[trials, queried]  # [B]
        query_step = self.lead + self.cue_steps + delays  # [B]

        inputs = torch.zeros(T, B, self.input_size, device=device)
        targets = torch.zeros(T, B, self.output_size, device=device)
        if self.encoding == "additive":
            cue_step = self.lead + torch.arange(S, device=device).expand(B, S)  # [B, S]
            cued_slot = order  # slot shown at each cue step  [B, S]
            cued_person = person_of_slot.gather(1, cued_slot)  # [B, S]
            rows = trials[:, None].expand(B, S)
            inputs[cue_step, rows, cued_person] = self.cue_amplitude
            inputs[cue_step, rows, P + cued_slot] = self.cue_amplitude
            if self.echo_cues:
                targets[cue_step, rows, cued_person] = self.target_amplitude
            inputs[query_step, trials, P + queried] = self.query_amplitude
            targets[query_step, trials, answer_person] = self.target_amplitude
            answer = answer_person
            answer_mask = torch.ones(B, self.output_size, dtype=torch.bool, device=device)
        else:
            channel = torch.arange(S, device=device) * P + person_of_slot  # [B, S]
            rows = trials[:, None].expand(B, S)
            inputs[self.lead, rows, channel] = self.cue_amplitude
            if self.echo_cues:
                targets[self.lead, rows, channel] = self.target_amplitude
            group = queried[:, None] * P + torch.arange(P, device=device)  # [B, P]
            inputs[query_step[:, None], trials[:, None], group] = self.query_amplitude
            answer = queried * P + answer_person  # [B]
            targets[query_step, trials, answer] = self.target_amplitude
            answer_mask = torch.zeros(B, self.output_size, dtype=torch.bool, device=device)
            answer_mask[trials[:, None], group] = True

        if self.distractors or self.delay_noise:
            self._distract(inputs, self.lead + self.cue_steps, query_step, generator)

        # with trial_steps, every step counts (targets 0 after the query); otherwise up to the query
        last_step = query_step if self.trial_steps is None else torch.full_like(query_step, T - 1)
        loss_weight = self._loss_weights(T, last_step, [query_step])  # [T, B]
        cue_start = torch.full((B,), self.lead, device=device)
        cue_stop = cue_start + self.cue_steps
        periods = {
            "lead": torch.stack([torch.zeros_like(cue_start), cue_start], dim=1),
            "cue": torch.stack([cue_start, cue_stop], dim=1),
            "delay": torch.stack([cue_stop, query_step], dim=1),
            "query": torch.stack([query_step, query_step + 1], dim=1),
        }
        content = {slot: person_of_slot[:, i] for i, slot in enumerate(self.slots)}
        return Batch(
            inputs, targets, loss_weight, query_step, delays, answer, answer_mask, periods, content=content
        )

    def _distract(self, inputs: Tensor, delay_start: int, query_step: Tensor, generator: torch.Generator):
        """Adds the distractors and the delay noise to ``inputs [T, B, D]`` in place (delay steps:
        ``delay_start <= t < query_step``)."""
        T, B, D = inputs.shape
        device = inputs.device
        steps = torch.arange(T, device=device)[:, None]  # [T, 1]
        in_delay = (steps >= delay_start) & (steps < query_step[None, :])  # [T, B]
        if self.distractors:
            # distinct random delay steps: the k largest of uniform scores, non-delay steps scored -1
            scores = torch.rand(T, B, generator=generator, device=device).masked_fill(~in_delay, -1.0)
            k = min(self.distractors, T)
            top, at = scores.topk(k, dim=0)  # [k, B]
            person = torch.randint(self.n_people, (k, B), generator=generator, device=device)
            value = torch.where(top >= 0, self.cue_amplitude, 0.0)
            trials = torch.arange(B, device=device).expand(k, B)
            inputs[at, trials, person] += value
        if self.delay_noise:
            noise = torch.randn(T, B, D, generator=generator, device=device) * self.delay_noise
            inputs += noise * in_delay[..., None]

    def with_other_query(self, batch: Batch, generator: torch.Generator) -> Batch | None:
        """Each trial's query names another slot (uniformly among the others); the answer scored is still
        the original slot's person. A network that reads the query answers the other slot's person and is
        right only when both slots had the same person (probability 1 / len(people))."""
        if self.n_slots < 2:
            return None
        B, P = batch.batch_size, self.n_people
        trials = torch.arange(B, device=batch.inputs.device)
        at_query = batch.inputs[batch.query_step, trials]  # [B, D]
        if self.encoding == "additive":
            queried = at_query[:, P:].argmax(dim=-1)
        else:
            queried = at_query.argmax(dim=-1) // P
        shift = torch.randint(1, self.n_slots, (B,), generator=generator, device=generator.device)
        other = (queried + shift.to(queried.device)) % self.n_slots
        inputs = batch.inputs.clone()
        inputs[batch.query_step, trials] = 0.0
        if self.encoding == "additive":
            inputs[batch.query_step, trials, P + other] = self.query_amplitude
        else:
            group = other[:, None] * P + torch.arange(P, device=other.device)  # [B, P]
            inputs[batch.query_step[:, None], trials[:, None], group] = self.query_amplitude
        return replace(batch, inputs=inputs)
