"""The population analyses on systems whose answer is known, the recorded signals against the network's
own pass, and the command line ``python -m neuromod.analyze``."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from neuromod.analysis.decoding import as_classes, cv_accuracy, decode_over_time
from neuromod.analysis.fixed_points import find_fixed_points
from neuromod.analysis.psychometric import fit_logistic, psychometric
from neuromod.analysis.recording import analysis_batch, delay_map, record
from neuromod.analysis.selectivity import selectivity
from neuromod.analysis.state_space import participation_ratio, pca
from neuromod.analyze import main as analyze_main
from neuromod.analyze import parse_settings
from neuromod.results.runs import read_run
from neuromod.results.tables import results_table
from tests.conftest import FAST, ROOT


def synthetic_population(B: int = 300, seed: int = 0):
    """[T=3, B, F=6]: at step 1 the first 4 neurons' parameter codes the label (4 classes: neuron k is
    high when the label is k), with small noise; elsewhere noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, B)
    x = rng.normal(size=(3, B, 6))
    x[1, :, :4] = np.eye(4)[labels] + 0.05 * rng.normal(size=(B, 4))
    return x, labels


def test_decoding_finds_the_carried_label_and_chance_elsewhere():
    x, labels = synthetic_population()
    curves = decode_over_time(x, {"item": labels}, n_shuffles=3)
    accuracy, shuffled = curves.accuracy["item"], curves.shuffled["item"]
    assert accuracy[1] == 1.0
    assert accuracy[0] < 0.4 and accuracy[2] < 0.4
    assert abs(shuffled[1] - 0.25) < 0.1
    assert curves.chance["item"] == pytest.approx(np.bincount(labels).max() / len(labels))


def test_decoding_a_one_hot_code_in_primal_and_dual_form():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 120)
    code = np.eye(3)[labels]
    few = np.concatenate([code, 0.01 * rng.normal(size=(120, 2))], axis=1)[None]  # F=5 < n: primal
    many = (np.tile(code, 50) + 0.01 * rng.normal(size=(120, 150)))[None]  # F > n: the dual form
    assert cv_accuracy(few, [labels])[0, 0] == 1.0
    assert cv_accuracy(many, [labels])[0, 0] == 1.0


def test_continuous_content_is_binned_in_quantiles():
    classes = as_classes(np.linspace(0, 1, 100))
    assert np.bincount(classes).tolist() == [25, 25, 25, 25]
    assert as_classes(np.array([5, 7, 5, 9])).tolist() == [0, 1, 0, 2]


def test_selectivity_names_the_carrying_neurons():
    rng = np.random.default_rng(0)
    B = 400
    a, b = rng.integers(0, 4, B), rng.integers(0, 4, B)
    values = rng.normal(size=(B, 5))
    values[:, 0] = a + 0.1 * rng.normal(size=B)
    values[:, 3] = b + 0.1 * rng.normal(size=B)
    found = selectivity(values, {"a": a, "b": b})
    assert found.selective[0, 0] and found.selective[3, 1]
    assert found.information[0, 0] > 1.0 and found.information[3, 1] > 1.0  # up to 2 bits
    assert not found.selective[0, 1] and not found.selective[3, 0]
    assert np.abs(found.information[[1, 2, 4]]).max() < 0.05


def test_participation_ratio_and_pca_of_known_covariances():
    rng = np.random.default_rng(0)
    isotropic = rng.normal(size=(20000, 8))
    assert participation_ratio(isotropic) == pytest.approx(8, rel=0.05)
    line = rng.normal(size=(500, 1)) * np.array([[1.0, 2.0, -1.0]])
    assert participation_ratio(line) == pytest.approx(1.0, abs=1e-6)
    scaled = rng.normal(size=(20000, 3)) * np.array([3.0, 1.0, 0.0])
    axes = pca(scaled, 3)
    assert axes.explained[:2] == pytest.approx([0.9, 0.1], abs=0.01)
    assert abs(axes.components[0, 0]) == pytest.approx(1.0, abs=0.01)


def test_fixed_point_of_a_linear_system_and_its_eigenvalues():
    A = torch.tensor([[0.5, 0.2, 0.0], [0.0, 0.3, 0.1], [0.0, 0.0, -0.4]], dtype=torch.float64)
    b = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    initial = torch.randn(12, 1, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    found = find_fixed_points(lambda s: s @ A.T + b, initial, iterations=100)
    expected = torch.linalg.solve(torch.eye(3, dtype=torch.float64) - A, b)
    assert torch.allclose(found.points[:, 0], expected.expand(12, 3), atol=1e-6)
    assert found.counts()["fixed"].tolist() == [1] and found.counts()["stable"].tolist() == [1]
    eigenvalues = found.eigenvalues[found.representative][0].real.sort().values
    assert torch.allclose(eigenvalues, torch.tensor([-0.4, 0.3, 0.5], dtype=torch.float64), atol=1e-8)


def _far_attractor(centre: float = 1000.0, rate: float = 0.5):
    """Two systems of two dimensions, each drifting at ``rate`` per step towards a stable point at
    ``centre`` per dimension (``s + rate tanh(centre - s)``, eigenvalues 1 - rate there): far from the
    point the map moves every state by the same amount, so the speed is flat (no gradient to descend) and
    Newton's step is undefined."""

    def step(s):
        return s + rate * torch.tanh(centre - s)

    return step


def test_forward_simulation_finds_a_far_attractor_that_speed_minimisation_cannot_reach():
    step = _far_attractor()
    initial = torch.randn(8, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    near = find_fixed_points(step, initial, iterations=400)
    # the descent stays near its starts: reported as not converged, not as "no fixed point there"
    assert near.not_converged.all() and near.counts()["fixed"].tolist() == [0, 0]
    assert near.points.abs().max() < 50
    found = find_fixed_points(step, initial, forward_steps=5000)
    assert found.is_fixed.all() and 0 < found.forward_steps < 5000  # stopped once converged
    assert torch.allclose(found.points, torch.full_like(found.points, 1000.0), rtol=1e-9)
    assert found.counts()["fixed"].tolist() == [1, 1] and found.counts()["stable"].tolist() == [1, 1]
    eigenvalues = found.eigenvalues[found.representative].real
    assert torch.allclose(eigenvalues, torch.full_like(eigenvalues, 0.5), atol=1e-8)
    # too short a simulation: the states are still travelling, and it says so
    short = find_fixed_points(step, initial, forward_steps=500)
    assert short.not_converged.all()


def test_line_attractor_gives_a_line_of_marginal_fixed_points():
    v = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64) / 2**0.5
    P = torch.outer(v, v)
    A = P + 0.5 * (torch.eye(3, dtype=torch.float64) - P)  # eigenvalue 1 along v, 0.5 across
    initial = torch.randn(16, 1, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2
    found = find_fixed_points(lambda s: s @ A.T, initial, iterations=100)
    points = found.points[:, 0]
    off_line = points - (points @ v)[:, None] * v
    assert off_line.abs().max() < 1e-6 and found.is_fixed.all()
    assert found.counts()["marginal"].item() == found.counts()["fixed"].item() > 10  # a continuum
    assert found.counts()["stable"].item() == 0


def test_logistic_psychometric_function_is_recovered_from_simulated_choices():
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, 20000)
    choice = rng.random(20000) < 1 / (1 + np.exp(-(-0.5 + 2.0 * x)))
    bias, slope = fit_logistic(x, choice)
    assert bias == pytest.approx(-0.5, abs=0.1) and slope == pytest.approx(2.0, abs=0.1)
    curve = psychometric("x", x, choice, n_bootstrap=0)
    assert curve.threshold == pytest.approx(0.25, abs=0.05) and curve.slope == pytest.approx(2.0, abs=0.15)
    assert curve.fit.lapse < 0.02 and curve.fit.guess < 0.02 and curve.fit.resolved
    assert np.all(np.diff(curve.p) > 0) and curve.n.sum() == 20000


def test_psychometric_slope_survives_lapses_and_perfect_separation_is_not_a_number():
    """A plain logistic flattens its slope to explain lapses, and on perfectly separated choices gives
    whatever its regulariser allows; the fit with guess and lapse rates recovers the slope inside its
    bootstrap interval, and calls a separated set unresolved."""
    from neuromod.analysis.psychometric import fit_psychometric

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 1000)
    p = 0.05 / 2 + 0.95 / (1 + np.exp(-8.0 * x))  # 5 % lapses, half to each side
    choice = rng.random(1000) < p
    assert fit_logistic(x, choice)[1] < 6.5  # the plain logistic is biased low
    fit = fit_psychometric(x, choice, n_bootstrap=40)
    assert fit.resolved and fit.slope == pytest.approx(8.0, rel=0.2)
    assert fit.slope_ci[0] < 8.0 < fit.slope_ci[1] and fit.slope_ci[1] - fit.slope_ci[0] < 8
    separated = fit_psychometric(np.linspace(-1, 1, 128), np.linspace(-1, 1, 128) > 0.1, n_bootstrap=10)
    assert not separated.resolved
    assert -separated.bias / separated.slope == pytest.approx(0.1, abs=0.03)
    assert separated.guess < 0.01 and separated.lapse < 0.01


def _model(compose_cfg, *overrides):
    from neuromod.runner.build import build

    cfg = compose_cfg(overrides=[*FAST, *overrides])
    task, model = build(cfg, torch.device("cpu"))
    return task, model


@pytest.mark.parametrize("architecture", ["additive", "one_neuron"])
def test_recorded_modulator_states_produce_the_parameters_used(compose_cfg, architecture):
    task, model = _model(compose_cfg, f"architecture={architecture}")
    recording = record(model, task, analysis_batch(task, 6, seed=0))
    neurons, lag = model.neurons, model.neurons.activation.lag
    T, B = recording.signals["rates"].shape[:2]
    h = recording.signals["modulator_h"].reshape(T, B, neurons.n_neurons, -1)
    produced = neurons.activation.to_params(neurons.modulator.head(h)).detach()  # [T, B, N, P]
    free = neurons.activation.free_mask
    used = recording.signals["parameters"].reshape(T, B, neurons.n_neurons, -1)
    assert torch.allclose(produced[: T - lag][..., free], used[lag:], atol=1e-5)


@pytest.mark.parametrize("architecture", ["additive", "lstm", "rnn"])
def test_delay_map_continues_the_recorded_trajectory(compose_cfg, architecture):
    """During the delay the input is zero: one step of the map from the state at t is the state at t+1."""
    task, model = _model(compose_cfg, f"architecture={architecture}")
    recording = record(model, task, analysis_batch(task, 5, seed=0))
    step, states = delay_map(model, recording)
    start, stop = recording.periods["delay"]
    with torch.no_grad():
        after = step(states[start : stop - 1].flatten(0, 1))
    assert torch.allclose(after, states[start + 1 : stop].flatten(0, 1), atol=1e-5)


def test_controls_without_modulator_say_so(compose_cfg):
    task, model = _model(compose_cfg, "af=fixed")
    recording = record(model, task, analysis_batch(task, 4, seed=0))
    assert set(recording.signals) == {"rates"}
    assert any("fixed" in note for note in recording.notes)
    assert delay_map(model, recording) is None


def test_a_run_ends_with_the_analyses(compose_cfg, tmp_path):
    from neuromod.api import run_config as run

    fast = [o for o in FAST if not o.startswith("analysis.dynamics")]
    overrides = [*fast, "analysis.dynamics=true", "analysis.n_trials=40", "analysis.figures=false"]
    summary = run(compose_cfg(overrides=overrides), output_dir=tmp_path)
    assert summary["status"] == "completed"
    results = json.loads((tmp_path / "analysis.json").read_text())
    assert "fixed_points" not in results and results["n_trials"] == 40
    assert {"decoding_delay_end.modulator_c", "participation_ratio.rates"} <= set(results["scalars"])


def test_bad_arguments_and_missing_files_are_one_line(tmp_path, capsys):
    with pytest.raises(Exception, match="what="):
        parse_settings(["what=decoding,nonsense"])
    assert analyze_main([str(tmp_path), "colour=red"]) == 2
    assert analyze_main([str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "checkpoint.pt is missing" in err[1]


def test_collection_reads_the_analysis_scalars(tmp_path):
    run = tmp_path / "0"
    run.mkdir()
    summary = {"status": "completed", "seed": 0, "config": {"seed": 0}, "final": {"test_accuracy": 1.0}}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "analysis.json").write_text(json.dumps({"scalars": {"decoding_delay_end.rates": 0.75}}))
    record_ = read_run(run)
    assert record_.analysis == {"decoding_delay_end.rates": 0.75}
    table = results_table([record_], ["seed"], tmp_path)
    assert table.loc[0, "decoding_delay_end.rates"] == 0.75


@pytest.mark.slow
def test_analyze_a_saved_run_from_its_checkpoint(tmp_path):
    """A tiny trained run without analysis files (as saved before the analyses existed): the command
    line rebuilds it and writes every analysis, fixed points included."""
    run = tmp_path / "run"
    overrides = [*FAST, "training.steps=5", "analysis.figures=false"]  # FAST: no analyses at the end
    done = subprocess.run(
        [sys.executable, "main.py", *overrides, f"hydra.run.dir={run}"], cwd=ROOT, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert not (run / "analysis.json").exists()
    command = [sys.executable, "-m", "neuromod.analyze", str(run), "what=all", "n_trials=40"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((run / "analysis.json").read_text())
    assert set(results["decoding"]["signals"]) == {"rates", "parameters", "modulator_h", "modulator_c"}
    fixed = results["fixed_points"]
    assert fixed["available"] and (fixed["systems"], fixed["state_size"]) == (20, 16)
    assert fixed["attractors"]["trials"] == 40 and fixed["near_trajectory"]["starts"] == 32
    for search in ("attractors", "near_trajectory"):
        assert (
            len(fixed[search]["per_system"]["not_converged"]) == 20
            and len(fixed[search]["relative_step"]) == 3
        )
    assert {"decoding.png", "state_space.png"} <= {p.name for p in (run / "figures").iterdir()}
    for curves in results["decoding"]["signals"].values():
        assert len(curves["accuracy"]["9am"]) == len(results["steps"])


@pytest.mark.parametrize("task_name", ["afc2", "cd", "comp"])
def test_orhan_ma_tasks_get_a_psychometric_curve_and_stimulus_decoding(compose_cfg, task_name):
    from neuromod.analysis.population import population_analyses

    short = ["task.delay=4", "task.stimulus_steps=5", "task.response_steps=10"]
    task, model = _model(compose_cfg, f"task={task_name}", *short)
    results = population_analyses(model, task, ("decoding", "psychometric", "state_space"), n_trials=60)
    curve = results["psychometric"]
    assert len(curve["x"]) == len(curve["p_choice"]) >= 2 and sum(curve["n"]) == 60
    assert all(0.0 <= p <= 1.0 for p in curve["p_choice"])
    assert results["delay_end"] == 5 + 4 - 1  # the last delay step
    assert set(results["decoding"]["chance"]) == set(task.sample(2, torch.Generator()).content)


def test_decoding_folds_keep_twins_together_so_memorised_trials_do_not_decode():
    """Features that identify the trial but carry nothing about its content beyond that: with twins in
    the set, ungrouped folds let the decoder score by recognising a twin of a training trial, which the
    shuffled control cannot see; folds by trial identity bring it to chance."""
    from neuromod.analysis.decoding import fold_index, trial_groups

    rng = np.random.default_rng(0)
    n_groups, copies = 60, 4
    identity = np.repeat(np.arange(n_groups), copies)
    labels = rng.integers(0, 4, n_groups)[identity]  # the content is random per trial identity
    features = rng.normal(size=(n_groups, 200))[identity][None]  # [1, B, F]: only identity
    inputs = torch.as_tensor(rng.normal(size=(3, n_groups, 5)))[:, identity]  # [T, B, D]: twins
    groups = trial_groups(inputs)
    assert len(np.unique(groups)) == n_groups and (groups[::copies] == groups[1::copies]).all()
    leaked = decode_over_time(features, {"c": labels}, seed=0)
    grouped = decode_over_time(features, {"c": labels}, seed=0, groups=groups)
    assert leaked.accuracy["c"][0] > 0.9 and leaked.shuffled["c"][0] < 0.45
    assert grouped.accuracy["c"][0] < 0.45
    folds = fold_index(len(identity), 5, np.random.default_rng(1), groups)
    for g in range(n_groups):
        assert len(set(folds[groups == g])) == 1
    assert np.bincount(folds).min() >= len(identity) // 5 - copies


def test_selectivity_of_a_network_that_holds_nothing_finds_almost_no_neuron():
    """Uncorrected, a test per neuron and content at p < 0.05 calls ~5 % of the pairs of pure noise
    selective; with the false-discovery-rate correction a noise network has (almost) none, while a planted
    neuron among the noise is still found."""
    from neuromod.analysis.selectivity import benjamini_hochberg

    rng = np.random.default_rng(2)
    contents = {f"c{k}": rng.integers(0, 4, 300) for k in range(3)}
    noise = rng.normal(size=(300, 100))
    found = selectivity(noise, contents)
    assert (found.p_values < 0.05).sum() > 5  # what an uncorrected test would report
    assert found.selective.sum() <= 1
    planted = noise.copy()
    planted[:, 7] = contents["c1"] + 0.3 * rng.normal(size=300)
    assert selectivity(planted, contents).selective[7, 1]
    assert benjamini_hochberg(np.array([0.001, 0.01, 0.03, 0.5]), 0.05).tolist() == [True, True, True, False]
    assert benjamini_hochberg(np.array([0.02, 0.03, 0.04, 0.5]), 0.05).tolist() == [False] * 4
