"""architecture=modulated_rnn: a recurrent network of modulated neurons, its options (Dale's law,
recurrent noise, a connectivity mask), its bad settings, and what it says about itself."""

from __future__ import annotations

import pytest
import torch

from neuromod.activation import Fixed, Gain, LearnAllParams, ModulatorRate, StaticLearned
from neuromod.analysis.recording import analysis_batch, delay_map, record
from neuromod.models import ModulatedRNN
from neuromod.neuron.recurrent import Lesion
from neuromod.runner.memory import estimate
from neuromod.runner.run import build_run
from neuromod.validation import ConfigError
from tests.conftest import FAST, compose_config

pytestmark = pytest.mark.usefixtures("one_thread")


def network(family=None, **options) -> ModulatedRNN:
    torch.manual_seed(0)
    options = {"n_neurons": 6, "hidden_size": 4, **options}
    return ModulatedRNN(5, 3, family if family is not None else Gain(), **options)


def train_steps(model: ModulatedRNN, steps: int = 5, seed: int = 0) -> list[float]:
    """A few Adam steps on random regression targets; the losses."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(8, 4, 5, generator=generator)
    targets = torch.randn(8, 4, 3, generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(steps):
        loss = (model(inputs).outputs - targets).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_orhan_ma_initialisation_and_recurrence():
    model = network(Fixed())
    assert torch.allclose(model.recurrent_weight, 0.98 * torch.eye(6))
    # the drive's bias at the threshold (theta = 1), the readout's at zero
    assert torch.equal(model.encoder.bias, torch.ones(6)) and model.decoder.bias.abs().max() == 0
    assert network(Fixed(), bias_at_threshold=False).encoder.bias.abs().max() == 0
    # input weights: normal with std drive_init_std (1), or Glorot-normal (Orhan & Ma) with null
    glorot = network(Fixed(), drive_init_std=None).encoder.weight.std()
    assert model.encoder.weight.std() > 0.5 > glorot
    inputs = torch.zeros(6, 2, 5)
    inputs[0] = 1.0  # a pulse at the first step only
    out = model(inputs)
    # the recurrence carries the pulse: the rates differ from those of a network without it
    cut = model.lesioned(inputs, "recurrent_cut", torch.ones(6, 2, dtype=torch.bool))
    assert not torch.allclose(out.activity[1:], cut.activity[1:])
    # with the recurrence cut, every step after the pulse is the response to zero input
    assert torch.allclose(cut.activity[1:], cut.activity[1:2].expand(5, -1, -1))


@pytest.mark.parametrize("family", [Gain(), LearnAllParams(), Fixed(), StaticLearned(), ModulatorRate()])
def test_every_family_trains_and_has_its_lesions(family):
    model = network(family)
    losses = train_steps(model, steps=3)
    assert all(torch.isfinite(torch.tensor(losses)))
    modulator = ("modulator_clamp", "modulator_blind", "parameter_freeze") if family.modulated else ()
    expected = (*modulator, "recurrent_cut")
    assert model.lesions == expected


def test_dale_keeps_the_sign_of_every_unit_outgoing_weights():
    model = network(dale=True, excitatory_fraction=0.5, sigma0=1.0)
    train_steps(model, steps=20)
    weight = model.recurrent_weight  # column j: unit j's outgoing weights
    assert (weight[:, :3] >= 0).all() and (weight[:, 3:] <= 0).all()
    assert (weight[:, :3] > 0).any() and (weight[:, 3:] < 0).any()
    # without Dale's law the same training changes signs
    free = network(sigma0=1.0)
    train_steps(free, steps=20)
    signs = torch.sign(free.recurrent_weight)
    assert not ((signs[:, :3] >= 0).all() and (signs[:, 3:] <= 0).all())


def test_noise_is_seeded_training_only_and_changes_the_trajectory():
    inputs = torch.randn(7, 3, 5, generator=torch.Generator().manual_seed(1))
    noisy = [network(sigma_rec=0.5)(inputs).activity for _ in range(2)]
    assert torch.equal(noisy[0], noisy[1])  # same seed, same noise
    quiet = network(sigma_rec=0.0)(inputs).activity
    assert not torch.allclose(noisy[0], quiet)
    # sigma_rec = 0 is the network without noise: the same weights, the same pass in evaluation mode
    model = network(sigma_rec=0.5)
    model.eval()
    assert torch.allclose(model(inputs).activity, quiet)
    # the noise stream moves on: two training passes differ
    model.train()
    assert not torch.equal(model(inputs).activity, model(inputs).activity)


def test_connectivity_mask_is_fixed_and_masked_connections_stay_zero():
    model = network(connectivity=0.5, sigma0=1.0)
    mask = model.mask.clone()
    assert int(mask.sum()) == 18  # round(0.5 * 36)
    assert torch.equal(network(connectivity=0.5, sigma0=1.0).mask, mask)  # from the seed
    train_steps(model, steps=10)
    assert torch.equal(model.mask, mask)
    assert (model.recurrent_weight[mask == 0] == 0).all()
    assert (model.recurrent_weight[mask == 1] != 0).any()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"excitatory_fraction": 1.5}, "architecture.excitatory_fraction=1.5 is not allowed"),
        ({"excitatory_fraction": -0.1}, "architecture.excitatory_fraction=-0.1 is not allowed"),
        ({"connectivity": 0.0}, "architecture.connectivity=0.0 is not allowed"),
        ({"connectivity": -1}, "architecture.connectivity=-1 is not allowed"),
        ({"sigma_rec": -0.1}, "architecture.sigma_rec=-0.1 is not allowed"),
        ({"dale": "yes"}, "architecture.dale='yes' is not allowed"),
        ({"drive_init_std": 0}, "architecture.drive_init_std=0 is not allowed"),
        ({"connectivity": 0.01}, "architecture.connectivity=0.01 keeps no recurrent connection"),
    ],
)
def test_bad_settings_name_the_key(options, message):
    with pytest.raises(ConfigError, match=message):
        network(**options)


def test_bad_setting_from_the_command_line_is_one_config_error():
    cfg = compose_config([*FAST, "architecture=modulated_rnn", "architecture.connectivity=0"])
    with pytest.raises(ConfigError, match="architecture.connectivity=0 is not allowed"):
        build_run(cfg)


def test_lesion_with_no_steps_changes_nothing():
    inputs = torch.randn(9, 3, 5, generator=torch.Generator().manual_seed(2))
    model = network(modulator_inputs=["drive", "feedback"])
    model.eval()
    reference = model(inputs)
    none = torch.zeros(9, 3, dtype=torch.bool)
    for name in model.lesions:
        assert torch.allclose(model.lesioned(inputs, name, none).outputs, reference.outputs, atol=1e-6)
    every = torch.ones(9, 3, dtype=torch.bool)
    clamped = model.forward(inputs, lesion=Lesion(modulator_clamp=every))
    # held from the first step: the modulator never leaves its zero state, the parameters are constant
    assert torch.allclose(clamped.params[2:], clamped.params[2:3].expand(7, -1, -1, -1))


def test_recorded_signals_delay_map_and_memory_estimate():
    cfg = compose_config([*FAST, "architecture=modulated_rnn", "architecture.n_neurons=5"])
    experiment = build_run(cfg)
    model, task = experiment.model, experiment.task
    recording = record(model, task, analysis_batch(task, 6, seed=0))
    assert {"rates", "parameters", "modulator_h", "modulator_c"} <= set(recording.signals)
    step, states = delay_map(model, recording)
    T, B = recording.signals["rates"].shape[:2]
    assert states.shape == (T, B, 1, 5 * (1 + 2 * 8))
    # the map reproduces the recorded trajectory over a step with zero input (the delay)
    t = recording.delay_end - 1
    assert torch.allclose(step(states[t]), states[t + 1], atol=1e-5)
    assert estimate(model, task, 4, 8).train_bytes > 0
