"""Work over more sequences than one call can index is split into chunks of sequences: with a tiny limit
forced on the CPU, every path computes what it computes unchunked (outputs and gradients). Evaluation runs
over chunks of trials and gives the figures of one pass."""

from __future__ import annotations

import pytest
import torch

from neuromod import chunks
from neuromod.activation import Gain, LearnAllParams
from neuromod.models import Additive, HebbianRNN, LSTMNetwork, OneNeuron, RNNNetwork
from neuromod.runner.run import build_run
from neuromod.training import evaluate
from tests.conftest import FAST

#: Elements per call: one to four sequences of the small models below per chunk.
TINY = 100


pytestmark = pytest.mark.usefixtures("one_thread")


def build(arch: str, implementation: str = "auto"):
    torch.manual_seed(0)
    if arch == "additive":
        model = Additive(5, 3, Gain(), n_neurons=4, hidden_size=6, implementation=implementation)
    elif arch == "additive_feedback":  # feedback, three signals: the step loop with inputs beside it
        model = Additive(
            5, 3, LearnAllParams(lag=2), 4, 6, ["drive", "feedback", "input"], implementation=implementation
        )
    elif arch == "one_neuron":
        model = OneNeuron(5, 3, Gain(), hidden_size=6, implementation=implementation)
    elif arch == "lstm":
        model = LSTMNetwork(5, 3, hidden_size=6)
    elif arch == "rnn":
        model = RNNNetwork(5, 3, hidden_size=6, sigma0=0.5)
    else:
        model = HebbianRNN(5, 3, hidden_size=6, sigma0=0.5, gamma=0.1)
    return model.double()


def outputs_and_grads(model, inputs):
    """Outputs, activity, parameters and the gradients of a fixed random functional of them."""
    model.zero_grad(set_to_none=True)
    inputs = inputs.clone().requires_grad_(True)
    result = model(inputs)
    weights = torch.randn(
        result.outputs.shape, dtype=torch.double, generator=torch.Generator().manual_seed(1)
    )
    loss = (result.outputs * weights).sum() + result.activity.pow(2).sum()
    if result.params is not None:
        loss = loss + result.params.pow(2).sum()
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()] + [inputs.grad.clone()]
    kept = [result.outputs, result.activity] + ([] if result.params is None else [result.params])
    return [t.detach() for t in kept], grads


CASES = [
    ("additive", "fused"),  # the hand-written recurrence (CPU default)
    ("additive", "native"),  # nn.LSTM over the whole sequence (what cuDNN runs on CUDA)
    ("additive_feedback", "fused"),  # the step loop as one node
    ("additive_feedback", "composed"),  # the step loop composed of torch.lstm_cell steps
    ("additive_feedback", "native"),  # the step loop on one-step nn.LSTM calls (CUDA's)
    ("one_neuron", "fused"),
    ("one_neuron", "native"),
    ("lstm", "auto"),
    ("rnn", "auto"),
    ("hebbian", "auto"),
]


@pytest.mark.parametrize(("arch", "implementation"), CASES, ids=["-".join(c) for c in CASES])
def test_chunked_and_unchunked_compute_the_same_outputs_and_gradients(arch, implementation, monkeypatch):
    model = build(arch, implementation)
    inputs = torch.randn(9, 7, 5, dtype=torch.double, generator=torch.Generator().manual_seed(2))
    whole = outputs_and_grads(model, inputs)
    calls = []
    original = chunks.chunk_slices

    def counted(n_items, per_item):
        slices = original(n_items, per_item)
        calls.append(len(slices))
        return slices

    monkeypatch.setattr(chunks, "chunk_slices", counted)
    with chunks.element_limit(TINY):
        split = outputs_and_grads(model, inputs)
    if arch != "hebbian":  # its step loop over [B, N] never comes near the limit
        assert max(calls) > 1, "the tiny limit did not split the work"
    # the same values up to rounding: a matrix product's blocking depends on its number of columns, and
    # the weights' gradients are sums over chunks
    for a, b in zip(whole[0] + whole[1], split[0] + split[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_chunk_slices_cover_every_item_once_within_the_limit():
    with chunks.element_limit(100):
        slices = chunks.chunk_slices(23, 30)  # 3 items of 30 elements per chunk
        assert [(s.start, s.stop) for s in slices] == [(i, min(i + 3, 23)) for i in range(0, 23, 3)]
        assert chunks.chunk_slices(5, 1000) == [slice(i, i + 1) for i in range(5)]  # at least one item
    assert chunks.chunk_slices(23, 30) == [slice(0, 23)]


class _CountingTrials(torch.nn.Module):
    """Wraps a network; records how many trials each pass ran over."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.sizes: list[int] = []

    def forward(self, inputs, record: bool = False):
        self.sizes.append(inputs.shape[1])
        return self.model(inputs, record=record)


@pytest.mark.parametrize("architecture", ["additive", "lstm", "one_neuron"])
def test_evaluation_in_chunks_of_the_training_batch_gives_the_unchunked_figures(compose_cfg, architecture):
    task = ["task=cue_go"] if architecture == "one_neuron" else []
    cfg = compose_cfg([*FAST, f"architecture={architecture}", *task, "training.eval_batch_size=23"])
    experiment = build_run(cfg)
    trainer = experiment.trainer
    trainer.model = _CountingTrials(experiment.model.double())
    batch = trainer.eval_batch
    batch.inputs, batch.targets = batch.inputs.double(), batch.targets.double()
    split = trainer.evaluate(batch, record=True)
    assert trainer.model.sizes == [4, 4, 4, 4, 4, 3]  # training.batch_size=4 trials per pass
    whole = evaluate(trainer.model, trainer.task, batch, trainer.loss_kind, record=True)
    assert trainer.model.sizes[-1] == 23
    assert split.accuracy == whole.accuracy and split.accuracy_by_delay == whole.accuracy_by_delay
    assert split.extra == whole.extra
    assert split.loss == pytest.approx(whole.loss, rel=1e-12)
    kept = ["outputs", "activity", "params", "drive"]
    pairs = [(getattr(split.output, k), getattr(whole.output, k)) for k in kept]
    pairs += [(split.output.gates[k], whole.output.gates[k]) for k in whole.output.gates]
    assert len(whole.output.gates) == (5 if architecture == "lstm" else 0)
    for a, b in pairs:
        if b is None:
            assert a is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
