"""The modulated neurons: fused vs step loop, lag timing, weight sharing, no coupling between neurons."""

import pytest
import torch

from neuromod.activation import Fixed, Gain, Geadah, LearnAllParams, StaticLearned
from neuromod.models import Additive, OneNeuron
from neuromod.neuron import ModulatedNeurons


def make_neurons(family, signals=("drive",), n=5, hidden=8, input_size=3, seed=0):
    torch.manual_seed(seed)
    return ModulatedNeurons(n, family, hidden, list(signals), input_size)


@pytest.mark.parametrize("family", [Gain(), LearnAllParams(), Geadah(), Gain(lag=0), Gain(lag=3)])
@pytest.mark.parametrize("signals", [("drive",), ("drive", "input")])
def test_fused_and_step_loop_agree(family, signals):
    neurons = make_neurons(family, signals)
    drive, inputs = torch.randn(12, 4, 5), torch.randn(12, 4, 3)
    fused_rates, fused_params = neurons(drive, inputs)
    loop_rates, loop_params = neurons(drive, inputs, step_loop=True)
    assert torch.allclose(fused_rates, loop_rates, atol=1e-5)
    assert torch.allclose(fused_params, loop_params, atol=1e-5)


@pytest.mark.parametrize("steps", [1, 3, 4])
def test_trials_no_longer_than_the_lag_use_the_initial_parameters(steps):
    family = Gain(lag=3)
    neurons = make_neurons(family)
    drive, inputs = torch.randn(steps, 2, 5, requires_grad=True), torch.randn(steps, 2, 3)
    rates, params = neurons(drive, inputs)
    loop_rates, loop_params = neurons(drive, inputs, step_loop=True)
    assert params.shape == (steps, 2, 5, 3)
    assert torch.allclose(rates, loop_rates, atol=1e-6) and torch.allclose(params, loop_params, atol=1e-6)
    lagged = min(steps, 3)
    assert torch.allclose(params[:lagged], family.initial_params().expand(lagged, 2, 5, 3))
    rates.sum().backward()  # the drive still gets its gradient through the transfer function
    assert torch.isfinite(drive.grad).all() and drive.grad.abs().sum() > 0


def test_parameters_act_after_lag_steps():
    family = Gain(lag=2)
    neurons = make_neurons(family)
    drive = torch.randn(10, 2, 5)
    _, used = neurons(drive, torch.zeros(10, 2, 3))
    # before the lag the initial value is used
    assert torch.allclose(used[:2], family.initial_params().expand(2, 2, 5, 3))
    # afterwards, step t uses what the modulator produced from the drive up to t - lag:
    # changing the drive at step 5 leaves steps < 7 untouched and changes step 7
    changed = drive.clone()
    changed[5] += 3.0
    _, used2 = neurons(changed, torch.zeros(10, 2, 3))
    assert torch.allclose(used[:7], used2[:7])
    assert not torch.allclose(used[7], used2[7])


def test_neurons_do_not_interact_and_share_the_modulator():
    neurons = make_neurons(Gain(), n=6)
    drive = torch.randn(9, 3, 6)
    rates, params = neurons(drive, torch.zeros(9, 3, 3))
    # permuting neurons permutes the result: one shared cell, one state per neuron
    perm = torch.randperm(6)
    rates_p, params_p = neurons(drive[..., perm], torch.zeros(9, 3, 3))
    assert torch.allclose(rates[..., perm], rates_p, atol=1e-6)
    # a neuron's parameters depend only on its own drive
    other = drive.clone()
    other[..., 1:] = torch.randn(9, 3, 5)
    _, params_o = neurons(other, torch.zeros(9, 3, 3))
    assert torch.allclose(params[..., 0, :], params_o[..., 0, :], atol=1e-6)
    # two neurons with identical drives get identical parameters
    twin = drive.clone()
    twin[..., 1] = twin[..., 0]
    _, params_t = neurons(twin, torch.zeros(9, 3, 3))
    assert torch.allclose(params_t[..., 0, :], params_t[..., 1, :], atol=1e-6)


def test_feedback_changes_the_modulator_input():
    torch.manual_seed(0)
    model = OneNeuron(input_size=1, output_size=1, activation=Gain(), hidden_size=8)
    x = torch.randn(15, 4, 1)
    out = model(x)
    assert out.outputs.shape == (15, 4, 1) and out.params.shape == (15, 4, 1, 3)
    # the step loop is used (feedback): output at t feeds the modulator at t+1
    assert model.neurons.uses_feedback


def test_controls_have_no_modulator():
    fixed = make_neurons(Fixed())
    static = make_neurons(StaticLearned())
    assert fixed.modulator is None and static.modulator is None
    drive = torch.randn(7, 2, 5)
    rates, params = fixed(drive, torch.zeros(7, 2, 3))
    assert torch.allclose(params, torch.ones_like(params), atol=1e-5)
    _, params_s = static(drive, torch.zeros(7, 2, 3))
    # constant in time
    assert torch.allclose(params_s, params_s[:1].expand_as(params_s))
    assert sum(p.numel() for p in static.parameters()) == 5 * 3


def test_bad_modulator_inputs_are_refused():
    with pytest.raises(ValueError, match="modulator_inputs"):
        make_neurons(Gain(), signals=("drive", "gossip"))
    with pytest.raises(ValueError, match="hidden_size"):
        ModulatedNeurons(3, Gain(), 0, ["drive"], 2)


def test_additive_forward_is_batched_independently():
    torch.manual_seed(0)
    model = Additive(input_size=7, output_size=4, activation=Gain(), n_neurons=5, hidden_size=8)
    x = torch.randn(10, 6, 7)
    whole = model(x).outputs
    halves = torch.cat([model(x[:, :3]).outputs, model(x[:, 3:]).outputs], dim=1)
    assert torch.allclose(whole, halves, atol=1e-5)
