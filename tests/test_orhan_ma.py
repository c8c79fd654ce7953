"""Orhan & Ma's tasks: trial layout, seeded determinism, targets checked against the drawn stimuli (decoded
from the inputs by a fit written here, not by the task's code), observers and the info-loss score."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate

from neuromod.api import run_config as run
from neuromod.models import HebbianRNN, RNNNetwork
from neuromod.tasks import observers
from neuromod.tasks.orhan_ma import DelayedEstimation, OrhanMaTask, TwoAlternativeForcedChoice
from tests.conftest import FAST, compose_config

TASKS = {"de1": (50, 1), "de2": (100, 2), "cd": (50, 1), "gde": (100, 1), "afc2": (50, 1), "sine": (50, 1)}
TASKS["comp"] = (50, 1)


def make(name: str, *overrides: str) -> OrhanMaTask:
    return instantiate(compose_config([f"task={name}", *(f"task.{o}" for o in overrides)]).task)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def fit_orientation(counts: torch.Tensor) -> torch.Tensor:
    """Least-squares fit of von Mises tuning (kappa 2, phi_i = i pi / 49) to counts ``[B, 50]`` on a grid."""
    grid = torch.linspace(0, math.pi, 2001)[:-1]
    phi = torch.arange(50) * math.pi / 49
    shapes = torch.exp(2 * (torch.cos(2 * (grid[:, None] - phi)) - 1))  # [G, 50]
    scale = (counts @ shapes.T) / (shapes**2).sum(-1)  # best amplitude per grid point [B, G]
    residual = (counts**2).sum(-1, keepdim=True) - scale * (counts @ shapes.T)
    return grid[residual.argmin(-1)]


def fit_line(counts: torch.Tensor, lo: float, hi: float, width: float) -> torch.Tensor:
    """Least-squares fit of Gaussian tuning (evenly spaced phi on [lo, hi]) to counts ``[B, 50]``."""
    grid = torch.linspace(lo - 10, hi + 10, 4001)
    phi = torch.linspace(lo, hi, 50)
    shapes = torch.exp(-((grid[:, None] - phi) ** 2) / (2 * width**2))
    proj = counts @ shapes.T
    residual = (counts**2).sum(-1, keepdim=True) - proj**2 / (shapes**2).sum(-1)
    return grid[residual.argmin(-1)]


# -- layout and determinism ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TASKS))
def test_shapes_periods_and_determinism(name):
    task = make(name)
    D, K = TASKS[name]
    batch = task.sample(6, gen(1))
    assert batch.inputs.shape == (150, 6, D) and batch.targets.shape == (150, 6, K)
    assert task.input_size == D and task.output_size == K
    assert batch.loss_weight.shape == (150, 6)
    assert torch.equal(batch.loss_weight.sum(0), torch.full((6,), 25.0))
    assert bool((batch.loss_weight[125:] == 1).all()) and bool((batch.loss_weight[:125] == 0).all())
    assert batch.query_step.tolist() == [145] * 6 and batch.delay.tolist() == [100] * 6
    assert batch.periods["cue"][0].tolist() == [0, 25] and batch.periods["query"][0].tolist() == [125, 150]
    again = task.sample(6, gen(1))
    for field in ("inputs", "targets", "answer"):
        assert torch.equal(getattr(batch, field), getattr(again, field)), field
    other = task.sample(6, gen(2))
    assert not torch.equal(batch.inputs, other.inputs)
    if name != "sine":
        assert bool((batch.inputs == batch.inputs.round()).all()) and bool((batch.inputs >= 0).all())


def test_variable_delay_tethered_and_dynamic_input():
    task = make("de1", "delays=[10,40,70,100]", "tethered=true", "dynamic_input=true")
    assert (task.min_delay, task.max_delay, task.eval_delays) == (10, 100, [10, 40, 70, 100])
    assert task.activity_penalty == 0.1 and task.input_size == 100
    batch = task.sample(64, gen(3))
    assert set(batch.delay.tolist()) == {10, 40, 70, 100}
    assert batch.n_steps == 150
    end = 50 + batch.delay
    assert torch.equal(batch.query_step, end - 10)
    steps = torch.arange(150)[:, None]
    expected_mask = ((steps >= end - 25) & (steps < end)).float()
    assert torch.equal(batch.loss_weight, expected_mask)
    # nothing after a trial's end
    assert float((batch.inputs * (steps >= end)[..., None]).abs().sum()) == 0.0
    # the dynamic bump moves from low to high preferred units over each trial
    loud = make("de1", "dynamic_input=true").sample(16, gen(4))
    dynamic = loud.inputs[..., 50:].sum(1)  # [T, 50]
    windows = torch.stack([dynamic[30:45].sum(0), dynamic[100:115].sum(0)])
    expected = torch.tensor([37.0, 107.0]) * math.pi / 149  # the bump's centre mid-window
    assert float(observers.circular_distance(fit_orientation(windows), expected).max()) < 0.3


def test_bad_delays_name_the_key():
    with pytest.raises(ValueError, match="task.delays"):
        DelayedEstimation(delays=[-3])
    with pytest.raises(ValueError, match="task.response_steps"):
        TwoAlternativeForcedChoice(tethered=True, response_steps=8)


# -- targets match the stimuli ------------------------------------------------------------------------
LOUD = ("gain=1.0", "stimulus_steps=100", "delay=5", "response_steps=100")


def test_delayed_estimation_targets_match_inputs():
    for name in ("de1", "de2"):
        task = make(name, *LOUD)
        batch = task.sample(32, gen(5))
        counts = batch.inputs[:100].sum(0)  # [B, L*50]
        for loc in range(task.n_locations):
            decoded = fit_orientation(counts[:, 50 * loc : 50 * (loc + 1)])
            target = batch.targets[batch.query_step[0], :, loc]
            assert float(observers.circular_distance(decoded, target).max()) < 0.05
        assert torch.equal(batch.answer, batch.targets[-1, :, 0])


def test_gated_estimation_reports_the_cued_location():
    task = make("gde", *LOUD, "spontaneous=20.0")
    batch = task.sample(32, gen(6))
    response = batch.inputs[105:].sum(0).reshape(32, 2, 50).sum(-1)  # [B, 2]
    cued = response.argmax(-1)
    counts = batch.inputs[:100].sum(0).reshape(32, 2, 50)
    decoded = fit_orientation(counts[torch.arange(32), cued])
    assert float(observers.circular_distance(decoded, batch.answer).max()) < 0.05
    assert len(set(cued.tolist())) == 2


def test_change_detection_targets_match_inputs():
    task = make("cd", *LOUD)
    batch = task.sample(64, gen(7))
    first = fit_orientation(batch.inputs[:100].sum(0))
    second = fit_orientation(batch.inputs[105:].sum(0))
    moved = observers.circular_distance(first, second) > 0.05
    same = batch.answer == 0
    assert not bool(moved[same].any())
    assert float(moved[~same].float().mean()) > 0.9
    assert 10 < int(same.sum()) < 54


def test_two_afc_and_comparison_targets_match_inputs():
    task = make("afc2", *LOUD)
    batch = task.sample(32, gen(8))
    decoded = fit_line(batch.inputs[:100].sum(0), -40, 40, 15)
    assert float((decoded - (30 * batch.answer.float() - 15)).abs().max()) < 3.0
    task = make("comp", *LOUD)
    batch = task.sample(64, gen(9))
    s1 = fit_line(batch.inputs[:100].sum(0), -50, 50, 10)
    s2 = fit_line(batch.inputs[105:].sum(0), -50, 50, 10)
    clear = (s1 - s2).abs() > 1.0
    assert int(clear.sum()) > 50
    assert torch.equal((s1 > s2)[clear].long(), batch.answer[clear])


def test_sine_inputs_and_curve():
    task = make("sine")
    batch = task.sample(4, gen(10))
    assert float(batch.inputs[:25].abs().sum()) == 0 and float(batch.inputs[125:].abs().sum()) == 0
    assert 0.08 < float(batch.inputs[25:125].std()) < 0.12
    k = torch.arange(25).float()
    assert torch.allclose(batch.targets[125:, 0, 0], torch.sin(0.25 * math.pi * k / 24))
    assert torch.allclose(batch.answer, torch.full((4,), math.sin(0.25 * math.pi * 20 / 24)))


# -- observers ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["de1", "de2", "gde", "cd", "afc2", "comp"])
def test_observer_beats_a_random_guess(name):
    task = make(name, "delay=5")
    batch = task.sample(256, gen(11))
    answer, valid = task.observer(batch)
    if task.kind == "estimate":
        target = batch.at_query(batch.targets)
        observer_error = observers.circular_distance(answer, target).mean()
        guess = torch.rand(target.shape, generator=gen(12)) * math.pi
        assert observer_error < 0.3 * observers.circular_distance(guess, target).mean()
        outputs = torch.zeros_like(batch.targets) + guess
    else:
        accuracy = ((answer > 0.5).long() == batch.answer)[valid].float().mean()
        assert accuracy > 0.8
        outputs = torch.randn(batch.targets.shape, generator=gen(12))
    assert task.extra_metrics(outputs, batch)["info_loss"] > 0.5


def test_scores_on_hand_made_cases():
    assert torch.allclose(
        observers.circular_distance(torch.tensor([0.1, 0.0, 3.0]), torch.tensor([math.pi - 0.1, 1.5, 0.0])),
        torch.tensor([0.2, 1.5, math.pi - 3.0]),
    )
    phi = torch.arange(50) * math.pi / 49
    one_spike = torch.zeros(2, 50)
    one_spike[0, 7], one_spike[1, 30] = 1, 3
    assert torch.allclose(observers.orientation_estimate(one_spike, phi), phi[[7, 30]], atol=1e-6)
    line = torch.linspace(-40, 40, 50)
    spike_at_top = torch.zeros(1, 50)
    spike_at_top[0, 49] = 1
    p = observers.category_probability(spike_at_top, line, offset=15, width=15)
    assert math.isclose(float(p), 1 / (1 + math.exp(-30 / 225 * 40)), rel_tol=1e-6)
    low, high = torch.zeros(2, 50), torch.zeros(2, 50)
    low[0, 0], high[0, 49] = 1, 1  # s1 near -40, s2 near +40: one spike each
    p, valid = observers.comparison_probability(high, low, line, width=10)
    assert valid.tolist() == [True, False]
    assert math.isclose(float(p[0]), 0.5 * (1 + math.erf(80 / math.sqrt(200) / math.sqrt(2))), rel_tol=1e-6)
    # CD: one spike on the same unit in both displays: P(changed) = I0(k)^2 / (I0(k)^2 + I0(2k))
    same = torch.zeros(1, 50)
    same[0, 12] = 1
    i0 = torch.special.i0
    k = torch.tensor(2.0, dtype=torch.float64)
    expected = float(i0(k) ** 2 / (i0(k) ** 2 + i0(2 * k)))
    assert math.isclose(float(observers.change_probability(same, same, phi, 2.0)), expected, rel_tol=1e-5)
    # binary score: matching the observer costs nothing, saying 0.5 loses everything
    p_obs, p_net = torch.tensor([0.9]), torch.tensor([0.6])
    lost = 0.9 * math.log(0.9 / 0.6) + 0.1 * math.log(0.1 / 0.4)
    available = 0.9 * math.log(1.8) + 0.1 * math.log(0.2)
    assert math.isclose(observers.binary_info_loss(p_obs, p_net), lost / available, rel_tol=1e-5)
    assert observers.binary_info_loss(p_obs, p_obs) < 1e-6
    assert math.isclose(observers.binary_info_loss(p_obs, torch.tensor([0.5])), 1.0, rel_tol=1e-6)


def test_info_loss_on_a_hand_made_batch():
    task = make("de1", "stimulus_steps=1", "delay=0", "response_steps=5")
    batch = task.sample(2, gen(13))
    batch.inputs.zero_()
    batch.inputs[0, 0, 0] = 1  # trial 0: one spike at phi = 0
    batch.inputs[0, 1, 10] = 1  # trial 1: one spike at phi = 10 pi / 49
    target = torch.tensor([0.1, 10 * math.pi / 49])
    batch.targets[:] = target[None, :, None] * batch.loss_weight[..., None]
    outputs = torch.zeros_like(batch.targets) + torch.tensor([0.2, 10 * math.pi / 49 + 0.1])[None, :, None]
    metrics = task.extra_metrics(outputs, batch)
    # observer errors 0.1 and 0 (mean 0.05), network errors 0.1 and 0.1: (0.1 - 0.05) / 0.05 = 1
    assert math.isclose(metrics["observer_circular_error"], 0.05, rel_tol=1e-5)
    assert math.isclose(metrics["info_loss"], 1.0, rel_tol=1e-4)
    assert task.correct(outputs, batch).tolist() == [True, True]


def test_binary_info_loss_through_the_task():
    task = make("afc2", "stimulus_steps=1", "delay=0", "response_steps=5")
    batch = task.sample(1, gen(14))
    batch.inputs.zero_()
    batch.inputs[0, 0, 49] = 1  # one spike at phi = +40
    llr = 30 / 225 * 40
    assert task.extra_metrics(torch.zeros_like(batch.targets), batch)["info_loss"] == pytest.approx(1.0)
    assert task.extra_metrics(torch.full_like(batch.targets, llr), batch)["info_loss"] == pytest.approx(
        0, abs=1e-4
    )


# -- losses ---------------------------------------------------------------------------------------------
def test_losses_and_activity_penalty():
    task = make("de1", "delays=[10,40]")
    batch = task.sample(8, gen(15))
    exact = batch.targets.clone()
    assert float(task.loss(exact + math.pi, batch)) < 1e-5  # a whole turn away is no error
    activity = torch.full((batch.n_steps, 8, 3), 2.0)
    penalty = float(task.loss(exact, batch, activity) - task.loss(exact, batch))
    assert math.isclose(penalty, 1e-4 * 4, rel_tol=1e-4)
    activity[batch.n_steps - 1] = 100.0  # padding after the short trials' ends must not count
    short = batch.delay == 10
    if bool(short.any()) and bool((~short).any()):
        heavier = float(task.loss(exact, batch, activity) - task.loss(exact, batch))
        n_long = int((~short).sum())
        assert math.isclose(heavier, 1e-4 * (4 * (40 - n_long) + 1e4 * n_long) / 40, rel_tol=1e-4)
    binary = make("cd", "delay=5")
    batch = binary.sample(8, gen(16))
    logits = (batch.targets * 2 - 1) * 30
    assert float(binary.loss(logits, batch)) < 1e-6
    assert binary.correct(torch.zeros_like(batch.targets) + logits, batch).all()
    sine = make("sine", "delay=5")
    batch = sine.sample(2, gen(17))
    assert math.isclose(float(sine.loss(batch.targets + 0.3, batch)), 0.3, rel_tol=1e-5)


# -- the Hebbian fast-weight RNN ----------------------------------------------------------------------
def test_hebbian_rnn_matches_the_plain_rnn_without_fast_weights_and_by_hand():
    torch.manual_seed(0)
    plain = RNNNetwork(3, 2, hidden_size=5, sigma0=0.5)
    hebbian = HebbianRNN(3, 2, hidden_size=5, sigma0=0.5, gamma=0.0)
    hebbian.load_state_dict(plain.state_dict())
    with torch.no_grad():
        for p in hebbian.parameters():
            p.add_(0.01)  # non-zero biases too
        plain.load_state_dict(hebbian.state_dict())
    x = torch.rand(6, 4, 3)
    assert torch.allclose(hebbian(x).outputs, plain(x).outputs, atol=1e-5)
    hebbian.gamma = 0.5
    W, U = hebbian.rnn.weight_hh_l0, hebbian.rnn.weight_ih_l0
    b = hebbian.rnn.bias_ih_l0 + hebbian.rnn.bias_hh_l0
    h = [torch.zeros(4, 5), torch.zeros(4, 5)]
    for t in range(6):
        overlap = (h[-2] * h[-1]).sum(-1, keepdim=True).clamp(0, 100)
        h.append(torch.relu(x[t] @ U.T + h[-1] @ W.T + b + 0.5 * overlap * h[-2]))
    with torch.no_grad():
        assert torch.allclose(hebbian(x).activity, torch.stack(h[2:]), atol=1e-5)


# -- whole runs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides",
    [
        ["task=de1", "architecture=rnn", "task.delays=[10,40]"],
        ["task=afc2", "architecture=additive", "af=learn_all_params", "task.delay=10"],
        ["task=gde", "architecture=rnn_hebbian", "task.delay=10"],
    ],
)
def test_runs_write_info_loss(tmp_path, overrides):
    summary = run(compose_config(FAST + overrides + ["analysis.figures=false"]), output_dir=tmp_path)
    assert summary["status"] == "completed"
    final = summary["final"]
    assert math.isfinite(final["info_loss"]) and 0 <= final["eval_accuracy"] <= 1
    assert summary["config"]["training.loss"] == "auto"
    if "task.delays=[10,40]" in overrides:
        # the sequentiality index covers whole trials: 25 + delay + 25 steps
        assert set(final["sequentiality_index_by_length"]) == {"60", "90"}
