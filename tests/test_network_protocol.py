"""A network says what it holds (:mod:`neuromod.models.protocol`): a new network class is recorded, mapped
and sized without any change to the analysis or memory code; one that says nothing is refused in one line."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from neuromod.analysis.recording import analysis_batch, delay_map, record
from neuromod.models import AnalysedNetwork, ModelOutput, RecordedSignals, StepMemory
from neuromod.runner.memory import estimate
from tests.conftest import FAST


class LeakyNetwork(nn.Module):
    """A toy network no analysis code knows: ``h_t = 0.5 h_{t-1} + tanh(W x_t)``, linear readout."""

    def __init__(self, input_size: int, output_size: int, hidden_size: int = 5):
        super().__init__()
        self.encoder = nn.Linear(input_size, hidden_size)
        self.decoder = nn.Linear(hidden_size, output_size)

    def forward(self, inputs: Tensor, record: bool = False) -> ModelOutput:
        h, states = torch.zeros_like(self.encoder(inputs[0])), []
        for x in inputs:
            h = 0.5 * h + torch.tanh(self.encoder(x))
            states.append(h)
        hidden = torch.stack(states)
        return ModelOutput(outputs=self.decoder(hidden), activity=hidden)

    def recorded_signals(self, out: ModelOutput, inputs: Tensor) -> RecordedSignals:
        return RecordedSignals(
            signals={"rates": out.activity, "leak": 0.5 * out.activity},
            per_neuron={"rates": out.activity},
            notes=["toy network"],
        )

    def delay_map(self, signals: dict[str, Tensor], inputs: Tensor):
        bias = torch.tanh(self.encoder.bias)
        return (lambda states: 0.5 * states + bias), signals["rates"][:, :, None, :]

    def memory_per_step(self) -> StepMemory:
        return StepMemory(kept=7, train=11, passing=3)


class SilentNetwork(LeakyNetwork):
    """A network that does not say what it holds."""

    recorded_signals = delay_map = memory_per_step = None


def _task(compose_cfg):
    from neuromod.runner.build import build

    task, _ = build(compose_cfg(overrides=FAST), torch.device("cpu"))
    return task


def test_a_new_network_is_recorded_mapped_and_sized_through_the_protocol(compose_cfg):
    task = _task(compose_cfg)
    model = LeakyNetwork(task.input_size, task.output_size)
    assert isinstance(model, AnalysedNetwork)
    recording = record(model, task, analysis_batch(task, 4, seed=0))
    assert set(recording.signals) == {"rates", "leak"}
    assert recording.notes == ["toy network"]
    step, states = delay_map(model, recording)
    start, stop = recording.periods["delay"]
    with torch.no_grad():
        after = step(states[start : stop - 1])
    assert torch.allclose(after, states[start + 1 : stop], atol=1e-5)

    found = estimate(model, task, batch_size=4, eval_batch_size=8)
    T, D, K = found.n_steps, task.input_size, task.output_size
    weights = sum(p.numel() for p in model.parameters()) * 16
    batch = T * (D + K + 2) * 4
    assert found.train_bytes == weights + T * 4 * 11 * 4 + batch * 4
    assert found.eval_bytes == weights + T * 7 * 4 * 8 + T * 4 * 3 * 4 + batch * 8


@pytest.mark.parametrize("use", ["record", "estimate"])
def test_a_network_without_the_protocol_is_refused_in_one_line(compose_cfg, use):
    task = _task(compose_cfg)
    model = SilentNetwork(task.input_size, task.output_size)
    with pytest.raises(TypeError, match="SilentNetwork cannot be used for .*AnalysedNetwork") as raised:
        if use == "record":
            record(model, task, analysis_batch(task, 4, seed=0))
        else:
            estimate(model, task, batch_size=4, eval_batch_size=8)
    assert "\n" not in str(raised.value)
