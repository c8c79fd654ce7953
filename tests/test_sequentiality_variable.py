"""The sequentiality index of variable-delay trials as Orhan & Ma computed it: every trial laid out as long
as the longest delay's, its state held through the masked gap between its own delay's end and the longest
delay's end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from neuromod.analysis import end_of_run_scalars
from neuromod.analysis.sequentiality import hold_through_gap, sequentiality
from neuromod.tasks.base import Batch


def _reference_layout(activity, gap_start, last_step):
    """The masked layout built trial by trial: own steps, the held state, then the response."""
    longest = gap_start.max()
    trials = []
    for b in range(activity.shape[1]):
        own = activity[: gap_start[b], b]
        held = np.repeat(activity[gap_start[b] - 1 : gap_start[b], b], longest - gap_start[b], axis=0)
        response = activity[gap_start[b] : last_step[b] + 1, b]
        trials.append(np.concatenate([own, held, response]))
    return np.stack(trials, axis=1)


def test_the_gap_holds_the_last_delay_state_and_the_response_follows():
    rng = np.random.default_rng(0)
    gap_start = np.array([6, 9, 12])  # stimulus 3 steps + delays 3, 6, 9
    last_step = gap_start + 4  # response of 5 steps
    activity = rng.random((int(last_step.max()) + 1, 3, 4))
    held, new_last = hold_through_gap(activity, gap_start, last_step)
    assert held.shape == (17, 3, 4) and new_last.tolist() == [16, 16, 16]
    assert np.array_equal(held, _reference_layout(activity, gap_start, last_step))
    assert np.array_equal(held[6:12, 0], np.repeat(activity[5:6, 0], 6, axis=0))  # held through the gap
    assert np.array_equal(held[12:, 0], activity[6:11, 0])  # then its own response
    assert np.array_equal(held[:, 2], activity[:17, 2])  # the longest trial is unchanged


def _batch(gap_start, last_step):
    B = len(gap_start)
    stimulus = np.zeros(B, dtype=np.int64) + 3
    return Batch(
        inputs=torch.zeros(int(last_step.max()) + 1, B, 1),
        targets=torch.zeros(int(last_step.max()) + 1, B, 1),
        loss_weight=torch.ones(int(last_step.max()) + 1, B),
        query_step=torch.as_tensor(last_step),
        delay=torch.as_tensor(gap_start - stimulus),
        answer=None,
        periods={
            "delay": torch.as_tensor(np.stack([stimulus, gap_start], 1)),
            "query": torch.as_tensor(np.stack([gap_start, last_step + 1], 1)),
        },
    )


def test_run_analysis_reports_the_held_gap_index_with_the_own_length_one_beside_it():
    """A population whose neurons peak one after another through a trial's own length: on own lengths each
    trial's peaks spread over its own window; held through the gap, a short trial's peaks bunch before a
    long flat stretch, as in the original, and the index differs."""
    rng = np.random.default_rng(1)
    delays = np.repeat([10, 40, 70, 100], 8)
    gap_start = 3 + delays
    last_step = gap_start + 9
    T, B, N = int(last_step.max()) + 1, len(delays), 30
    t = np.arange(T)[:, None, None]
    peaks = rng.random((1, B, N)) * (last_step[None, :, None])  # within each trial's own length
    activity = np.exp(-0.5 * ((t - peaks) / 2.0) ** 2) + 0.01 * rng.random((T, B, N))
    cfg = OmegaConf.create({"si_threshold": 0.01})
    scalars = end_of_run_scalars(
        torch.as_tensor(activity), _batch(gap_start, last_step), cfg, torch.as_tensor(last_step)
    )
    _, held_last = hold_through_gap(activity, gap_start, last_step)
    expected = np.nanmean(
        sequentiality(_reference_layout(activity, gap_start, last_step), held_last, 0.01).index
    )
    assert scalars["sequentiality_index"] == pytest.approx(expected, rel=1e-6)  # float32 activity
    assert scalars["sequentiality_layout"] == "held_gap" and scalars["si_trials_total"] == B
    own = np.nanmean(sequentiality(activity, last_step, 0.01).index)
    assert scalars["sequentiality_index_own_length"] == pytest.approx(own, rel=1e-6)
    assert abs(scalars["sequentiality_index"] - own) > 0.05
    assert set(scalars["sequentiality_index_by_length"]) == {str(x) for x in np.unique(last_step + 1)}


def test_fixed_delays_get_no_held_gap_index():
    gap_start = np.full(6, 13)
    last_step = gap_start + 9
    activity = np.random.default_rng(2).random((23, 6, 5))
    cfg = OmegaConf.create({"si_threshold": 0.1})
    scalars = end_of_run_scalars(
        torch.as_tensor(activity), _batch(gap_start, last_step), cfg, torch.as_tensor(last_step)
    )
    assert "sequentiality_layout" not in scalars and "sequentiality_index_by_length" not in scalars
    expected = np.nanmean(sequentiality(activity, last_step, 0.1).index)
    assert scalars["sequentiality_index"] == pytest.approx(expected, rel=1e-6)
