"""Analyses of a trained network's activity: the sequentiality index, added to ``summary.json``'s
``final`` metrics (here); the population analyses of :mod:`neuromod.analysis.population`
(``analysis.json``)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from omegaconf import DictConfig
from torch import Tensor

from neuromod.analysis.sequentiality import (
    Sequentiality,
    hold_through_gap,
    sequentiality,
    sequentiality_index,
)
from neuromod.tasks.base import Batch

__all__ = [
    "Sequentiality",
    "end_of_run_scalars",
    "end_of_run_scalars_by_group",
    "sequentiality",
    "sequentiality_index",
]

log = logging.getLogger(__name__)


def end_of_run_scalars(
    activity: Tensor, eval_batch: Batch, cfg: DictConfig, last_step: Tensor | None = None
) -> dict[str, Any]:
    """Scalar results of the end-of-run analyses on the evaluation set.

    The sequentiality index uses the activity of every evaluation trial (``activity [T, B, N]``: the
    neurons' rates, or the hidden state of the lstm / rnn baselines, as the final evaluation recorded it),
    each trial up to and including ``last_step [B]`` (the task's ``analysis_last_step``; None: the query
    step).
    """
    raw = cfg.si_threshold
    try:
        threshold = float(raw)
    except (TypeError, ValueError):
        # the run has trained already: an unusable setting must not cost its result
        log.error("analysis.si_threshold must be a number, got %r: no sequentiality index", raw)
        return {"sequentiality_index": None}
    last = (eval_batch.query_step if last_step is None else last_step).cpu().numpy()
    values = activity.detach().float().cpu().numpy()
    own = sequentiality(values, last, threshold=threshold)
    lengths = last + 1
    held = _held_gap_layout(values, eval_batch, last) if len(np.unique(lengths)) > 1 else None
    if held is None:
        scalars = own.summary()
    else:
        # variable delays: the index on matched lengths, as Orhan & Ma computed it (every trial laid out
        # to the longest delay, its state held through the gap); the own-length figures beside it
        scalars = sequentiality(*held, threshold=threshold).summary()
        scalars["sequentiality_layout"] = "held_gap"
        scalars["sequentiality_index_own_length"] = own.summary()["sequentiality_index"]
    scalars["si_threshold"] = threshold
    if len(np.unique(lengths)) > 1:  # the own-length index per trial length, for matched comparisons
        scalars["sequentiality_index_by_length"] = {str(k): v for k, v in own.by_length(lengths).items()}
    log.info(
        "sequentiality index %s (%d of %d trials; %.1f of %d neurons kept per trial, threshold %g)",
        "n/a" if scalars["sequentiality_index"] is None else f"{scalars['sequentiality_index']:.3f}",
        scalars["si_trials_used"],
        scalars["si_trials_total"],
        scalars["si_neurons_kept"],
        scalars["si_neurons_total"],
        threshold,
    )
    return scalars


def _held_gap_layout(
    values: np.ndarray, batch: Batch, last: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The activity laid out as Orhan & Ma did for variable delays: every trial as long as the longest
    delay's, its state held through the gap
    (:func:`~neuromod.analysis.sequentiality.hold_through_gap`); with each trial's new last step. None when
    the batch records no delay period or a delay that ends after the analysed steps."""
    if "delay" not in batch.periods:
        return None
    gap_start = batch.periods["delay"][:, 1].cpu().numpy()
    if len(np.unique(gap_start)) < 2 or (gap_start > last).any():
        return None
    return hold_through_gap(values, gap_start, last)


def end_of_run_scalars_by_group(
    activity: Tensor,
    eval_batch: Batch,
    groups: dict[str, Tensor],
    cfg: DictConfig,
    last_step: Tensor | None = None,
) -> dict[str, Any]:
    """:func:`end_of_run_scalars` on each group's trials (``name -> indices [b]``, e.g. a multitask's
    tasks), its results under ``<result>_<name>`` (``sequentiality_index_de1``)."""
    results: dict[str, Any] = {}
    for name, index in groups.items():
        last = None if last_step is None else last_step[index]
        scalars = end_of_run_scalars(activity[:, index], eval_batch.select(index), cfg, last)
        results.update({f"{key}_{name}": value for key, value in scalars.items() if key != "si_threshold"})
    return results
