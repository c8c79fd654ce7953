"""Sequentiality index: hand-computed cases, a loop reference, and sequential vs persistent activity."""

import math

import numpy as np
import pytest
import torch

from neuromod.analysis import end_of_run_scalars, sequentiality, sequentiality_index
from neuromod.runner.build import build
from tests.conftest import FAST, compose_config


def reference_si(activity, last_step, threshold=0.1, n_bins=20):
    """A trial-by-trial loop written straight from the definition (numpy.histogram for the bins)."""
    scores = []
    for b in range(activity.shape[1]):
        trial = activity[: last_step[b] + 1, b]  # [L, N]
        selected = trial[:, trial.mean(axis=0) > threshold]
        if selected.shape[1] == 0:
            continue
        peaks = selected.argmax(axis=0)
        counts = np.histogram(peaks, bins=n_bins)[0] + 0.1
        p = counts / counts.sum()
        entropy = -(p * np.log(p)).sum()
        ratios = []
        for n, peak in enumerate(peaks):
            inside = np.zeros(len(trial), dtype=bool)
            inside[max(peak - 2, 0) : peak + 2] = True
            ridge, background = selected[inside, n].mean(), selected[~inside, n].mean()
            if (~inside).any() and ridge > 0 and background > 0:
                ratios.append(math.log(ridge / background))
        if ratios:
            scores.append(entropy + np.mean(ratios))
    return np.mean(scores)


def test_hand_computed_case():
    a = [0.1, 0.2, 1.0, 0.2, 0.1, 0.1]  # peak 2: window steps 0-3 (mean 0.375), background 0.1
    b = [0.1, 0.1, 0.1, 0.2, 0.4, 0.8]  # peak 5: window steps 3-5 (mean 1.4/3), background 0.1
    c = [0.05] * 6  # mean 0.05: below the threshold, dropped
    trial = np.array([a, b, c]).T  # [T=6, N=3]
    silent = np.zeros((6, 3))  # no neuron kept: left out of the mean
    activity = np.stack([trial, silent], axis=1)  # [T, B=2, N]
    result = sequentiality(activity, threshold=0.1)

    # Peaks 2 and 5 span 3 steps: 20 bins, the two peaks fall in the first and the last bin.
    p_full, p_empty = 1.1 / 4.0, 0.1 / 4.0
    entropy = -2 * p_full * math.log(p_full) - 18 * p_empty * math.log(p_empty)
    ratio = (math.log(0.375 / 0.1) + math.log((1.4 / 3) / 0.1)) / 2
    assert result.n_kept.tolist() == [2, 0]
    assert result.peak_step[0, :2].tolist() == [2, 5]
    assert result.entropy[0] == pytest.approx(entropy, abs=1e-12)
    assert result.ridge_to_background[0] == pytest.approx(ratio, abs=1e-12)
    assert result.used.tolist() == [True, False]
    summary = result.summary()
    assert summary["sequentiality_index"] == pytest.approx(entropy + ratio, abs=1e-12)
    assert summary["si_neurons_kept"] == 1.0 and summary["si_trials_used"] == 1


def test_single_kept_neuron_has_minimum_entropy():
    # One kept neuron: every peak in one bin -> entropy of (1.1, 0.1 x 19) / 3.0.
    trial = np.array([[0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1], [0.0] * 7]).T[:, None, :]  # [T, 1, 2]
    p = np.array([1.1] + [0.1] * 19) / 3.0
    ratio = math.log((1.2 / 4) / 0.1)
    assert sequentiality_index(trial) == pytest.approx(-(p * np.log(p)).sum() + ratio, abs=1e-12)


def test_only_valid_steps_count():
    rng = np.random.default_rng(1)
    short = rng.random((9, 1, 5))
    padded = np.concatenate([short, 5.0 * np.ones((4, 1, 5))])  # padding would move every peak
    whole = sequentiality(short).summary()
    assert sequentiality(padded, last_step=np.array([8])).summary() == whole
    assert sequentiality(padded).summary()["sequentiality_index"] != whole["sequentiality_index"]


def test_matches_loop_reference_on_random_activity():
    rng = np.random.default_rng(0)
    activity = rng.gamma(0.7, 0.3, size=(25, 40, 12))  # [T, B, N]
    last_step = rng.integers(6, 25, size=40)
    assert sequentiality_index(activity, last_step) == pytest.approx(
        reference_si(activity, last_step), abs=1e-10
    )


def test_tiling_bumps_score_higher_than_persistent_activity():
    T, B, N = 30, 6, 20
    rng = np.random.default_rng(2)
    t = np.arange(T)[:, None, None]
    centres = np.linspace(0, T - 1, N)[None, None, :]
    bumps = np.exp(-0.5 * ((t - centres) / 2.0) ** 2) + 0.01 * rng.random((T, B, N))
    persistent = 0.5 + 0.01 * rng.random((T, B, N))
    sequential_si = sequentiality_index(bumps)
    persistent_si = sequentiality_index(persistent)
    assert sequential_si > persistent_si + 2.0
    # Near the maximum: every one of the 20 bins holds one peak, and a large ridge-to-background ratio.
    assert sequentiality(bumps).entropy.mean() == pytest.approx(math.log(20), abs=1e-9)


def test_no_neuron_kept_gives_no_index():
    result = sequentiality(np.full((10, 3, 4), 0.05), threshold=0.1)
    assert result.summary()["sequentiality_index"] is None
    assert math.isnan(sequentiality_index(np.full((10, 3, 4), 0.05)))


def test_run_analysis_reports_si_on_the_eval_set():
    cfg = compose_config(FAST)
    task, model = build(cfg, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    batch = task.sample(16, generator)
    out = end_of_run_scalars(model(batch.inputs).activity, batch, cfg.analysis)
    assert out["si_trials_total"] == 16
    assert out["si_neurons_total"] == int(cfg.architecture.n_neurons)
    assert 0 <= out["si_neurons_kept"] <= out["si_neurons_total"]
    expected = sequentiality(
        model(batch.inputs).activity.detach().numpy(), batch.query_step.numpy(), cfg.analysis.si_threshold
    ).summary()["sequentiality_index"]
    # the trials' delays differ: the headline index is on matched lengths (held through the gap), the
    # own-length one beside it (tests/test_sequentiality_variable.py)
    assert out["sequentiality_layout"] == "held_gap"
    assert out["sequentiality_index_own_length"] == expected


def test_unusable_threshold_costs_no_result():
    from omegaconf import OmegaConf

    cfg = compose_config(FAST)
    task, model = build(cfg, torch.device("cpu"))
    batch = task.sample(4, torch.Generator().manual_seed(0))
    out = end_of_run_scalars(model(batch.inputs).activity, batch, OmegaConf.create({"si_threshold": "high"}))
    assert out == {"sequentiality_index": None}


def test_index_per_trial_length_matches_each_group_alone():
    """The index per trial length is the index of that length's trials computed on their own."""
    rng = np.random.default_rng(0)
    activity = rng.random((30, 12, 6))
    last = np.array([9] * 4 + [19] * 4 + [29] * 4)
    result = sequentiality(activity, last, threshold=0.1)
    by_length = result.by_length(last + 1)
    assert sorted(by_length) == [10, 20, 30]
    for length in (10, 20, 30):
        rows = last + 1 == length
        alone = sequentiality(activity[:, rows], last[rows], threshold=0.1).summary()["sequentiality_index"]
        assert by_length[length] == pytest.approx(alone)
