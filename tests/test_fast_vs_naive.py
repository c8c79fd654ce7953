"""The fast modulator path computes what the naive per-neuron loop and ``nn.LSTM`` compute: same outputs,
same gradients; the fused sequence and the step loop agree, lag included."""

from __future__ import annotations

import copy

import pytest
import torch
from reference import NaiveReference

from neuromod.activation import Gain, Geadah, LearnAllParams
from neuromod.models import Additive, Factorial, OneNeuron
from neuromod.neuron import Modulator
from neuromod.neuron.kernels import modulator_sequence
from neuromod.neuron.step_loop import StepLoop

pytestmark = pytest.mark.usefixtures("one_thread")


def build(arch: str, family, seed: int = 0):
    torch.manual_seed(seed)
    if arch == "additive":
        model = Additive(input_size=5, output_size=3, activation=family, n_neurons=4, hidden_size=6)
        inputs = torch.randn(9, 3, 5)
    elif arch == "additive_input":
        model = Additive(5, 3, family, n_neurons=3, hidden_size=6, modulator_inputs=["drive", "input"])
        inputs = torch.randn(8, 2, 5)
    elif arch == "factorial":
        model = Factorial(input_size=6, output_size=6, activation=family, hidden_size=5)
        inputs = torch.randn(7, 3, 6)
    else:
        model = OneNeuron(input_size=2, output_size=1, activation=family, hidden_size=6)
        inputs = torch.randn(11, 4, 2)
    return model.double(), inputs.double()


def outputs_and_grads(model, parameters, inputs, **kwargs):
    """Outputs, parameters and the gradients of a fixed random functional of both."""
    for p in parameters:
        p.grad = None
    result = model(inputs, **kwargs)
    weights = torch.randn(
        result.outputs.shape, dtype=torch.double, generator=torch.Generator().manual_seed(1)
    )
    loss = (result.outputs * weights).sum() + result.params.pow(2).sum()
    loss.backward()
    return result.outputs.detach(), result.params.detach(), [p.grad.clone() for p in parameters]


def assert_same(a, b, tol=1e-10):
    out_a, params_a, grads_a = a
    out_b, params_b, grads_b = b
    assert torch.allclose(out_a, out_b, atol=tol, rtol=0)
    assert torch.allclose(params_a, params_b, atol=tol, rtol=0)
    for grad_a, grad_b in zip(grads_a, grads_b, strict=True):
        assert torch.allclose(grad_a, grad_b, atol=tol, rtol=0)


FAMILIES = [Gain(), LearnAllParams(lag=2), Geadah(lag=0)]


@pytest.mark.parametrize("arch", ["additive", "additive_input", "factorial", "one_neuron"])
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f"{type(f).__name__}-lag{f.lag}")
def test_fast_model_matches_the_naive_per_neuron_loop(arch, family):
    model, inputs = build(arch, copy.deepcopy(family))
    parameters = list(model.parameters())
    naive = NaiveReference(model)
    # the reference shares the model's parameters instead of copying them
    assert {id(p) for p in naive.parameters()} == {id(p) for p in parameters}
    assert_same(outputs_and_grads(model, parameters, inputs), outputs_and_grads(naive, parameters, inputs))


@pytest.mark.parametrize("arch", ["additive", "additive_input", "factorial", "one_neuron"])
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f"{type(f).__name__}-lag{f.lag}")
@pytest.mark.parametrize("loop", ["function", "composed"])
def test_fused_step_loop_and_native_lstm_agree(arch, family, loop):
    # the step loop as one hand-written node and composed of autograd operations (torch.lstm_cell
    # steps), the fused sequence, and nn.LSTM over the whole sequence and step by step
    selected = {"fused": "fused" if loop == "function" else "composed", "native": "native"}
    model, inputs = build(arch, copy.deepcopy(family))
    parameters = list(model.parameters())
    modulator = model.neurons.modulator
    results = {}
    for implementation in ("fused", "native"):
        modulator.implementation = selected[implementation]
        results[implementation] = outputs_and_grads(model, parameters, inputs)
        results[implementation + "_loop"] = outputs_and_grads(model, parameters, inputs, step_loop=True)
    for name, result in results.items():
        assert_same(results["fused"], result), name


def test_fused_path_is_the_cpu_default_and_differs_from_native_only_by_rounding():
    model, inputs = build("additive", Gain())
    model = model.float()
    inputs = inputs.float()
    assert model.neurons.modulator.uses_fused(inputs)
    fast = model(inputs).outputs
    model.neurons.modulator.implementation = "native"
    assert torch.allclose(fast, model(inputs).outputs, atol=1e-5)


def test_sequence_gradients_are_exact():
    torch.manual_seed(0)
    T, S, F, H, P = 4, 3, 2, 3, 2
    args = [
        torch.randn(T, S, F),
        torch.randn(4 * H, F),
        torch.randn(4 * H),
        torch.randn(4 * H, H) * 0.5,
        torch.randn(P, H),
        torch.randn(P),
    ]
    args = [a.double().requires_grad_() for a in args]
    assert torch.autograd.gradcheck(modulator_sequence, args)


@pytest.mark.parametrize("family", FAMILIES + [Gain(lag=0)], ids=lambda f: f"{type(f).__name__}-lag{f.lag}")
@pytest.mark.parametrize("feedback", [True, False])
def test_step_loop_gradients_are_exact(family, feedback):
    # the loop node's hand-written backward against finite differences, both outputs, every input
    torch.manual_seed(0)
    T, S, F, H = 5, 3, 2, 3
    P = family.n_params
    args = [
        torch.randn(T, S, F),
        torch.randn(T, S),
        torch.randn(4 * H, F),
        torch.randn(4 * H),
        torch.randn(4 * H, H) * 0.5,
        torch.randn(P, H),
        torch.randn(P),
    ]
    column = 1 if feedback else None
    if feedback:
        args[0][..., column] = 0  # the placeholder the network passes for the feedback
    args = [a.double().requires_grad_(i > 0 or not feedback) for i, a in enumerate(args)]
    family = copy.deepcopy(family).double()

    def loop(*tensors):
        return StepLoop.apply(*tensors, family, column)

    assert torch.autograd.gradcheck(loop, args)


def test_reused_buffers_never_leak_between_passes():
    """Two forward passes alive at once (buffers reused only after a graph is released)."""
    torch.manual_seed(0)
    modulator = Modulator(1, 8, 3, Gain().initial_raw)
    a, b = torch.randn(6, 10, 1), torch.randn(9, 4, 1)
    alone_a = torch.autograd.grad(modulator(a).sum(), list(modulator.parameters()))
    alone_b = torch.autograd.grad(modulator(b).pow(2).sum(), list(modulator.parameters()))
    for _ in range(2):  # the second round runs on recycled buffers
        out_a, out_b = modulator(a), modulator(b)
        with torch.no_grad():
            modulator(torch.randn(6, 10, 1))  # an evaluation in between must not disturb them
        grads_b = torch.autograd.grad(out_b.pow(2).sum(), list(modulator.parameters()))
        grads_a = torch.autograd.grad(out_a.sum(), list(modulator.parameters()))
        for x, y in zip(alone_a + alone_b, grads_a + grads_b, strict=True):
            assert torch.allclose(x, y, atol=1e-6)


def test_step_loop_buffers_never_leak_between_passes():
    """The loop node's reused buffers: two training passes alive at once, an evaluation in between."""
    model, _ = build("one_neuron", Gain())
    model = model.float()
    parameters = list(model.parameters())
    a, b = torch.randn(11, 4, 2), torch.randn(7, 6, 2)
    alone_a = torch.autograd.grad(model(a).outputs.sum(), parameters)
    alone_b = torch.autograd.grad(model(b).outputs.pow(2).sum(), parameters)
    for _ in range(2):  # the second round runs on recycled buffers
        out_a, out_b = model(a).outputs, model(b).outputs
        with torch.no_grad():
            model(torch.randn(11, 4, 2))
        grads_b = torch.autograd.grad(out_b.pow(2).sum(), parameters)
        grads_a = torch.autograd.grad(out_a.sum(), parameters)
        for x, y in zip(alone_a + alone_b, grads_a + grads_b, strict=True):
            assert torch.equal(x, y)


def test_step_loop_outputs_do_not_share_the_reused_buffers():
    # a one-step trial's rates are a contiguous row of the loop's state buffer: they must be a copy
    model, _ = build("one_neuron", Gain())
    model = model.float()
    short = torch.randn(1, 5, 2)
    kept = model(short).activity.detach()  # the graph is dropped: its buffers go back to the pool
    expected = kept.clone()
    for _ in range(3):
        model(torch.randn(1, 5, 2) * 10).outputs.sum().backward()  # reuses those buffers
    assert torch.equal(kept, expected)


def test_naive_reference_refuses_a_baseline():
    from neuromod.models.baselines import LSTMNetwork

    with pytest.raises(TypeError, match="NaiveReference"):
        NaiveReference(LSTMNetwork(input_size=3, output_size=2, hidden_size=4))


def test_evaluation_without_grad_matches_the_training_pass():
    torch.manual_seed(0)
    for width in (1, 6):  # broadcast projection and matrix-product projection
        modulator = Modulator(width, 8, 3, Gain().initial_raw)
        signals = torch.randn(7, 5, width)
        with torch.no_grad():
            evaluated = modulator(signals)
        assert torch.allclose(evaluated, modulator(signals), atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f"{type(f).__name__}-lag{f.lag}")
def test_step_loop_without_gradients_computes_the_same(family):
    # evaluation runs the loop's forward pass alone (nothing kept for a backward pass)
    model, inputs = build("one_neuron", copy.deepcopy(family))
    with_grad = model(inputs)
    with torch.no_grad():
        without = model(inputs)
    assert torch.equal(with_grad.outputs.detach(), without.outputs)
    assert torch.equal(with_grad.params.detach(), without.params)
