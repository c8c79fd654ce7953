"""Sequentiality index (Orhan & Ma 2019): does a population hold a memory as a sequence of transient
bumps (neurons taking turns) or as persistent activity (the same neurons active throughout)?

Per trial, over the trial's valid steps ``0 .. query_step`` (inclusive; later steps are padding):

1. keep the neurons whose mean activity over those steps exceeds ``threshold``;
2. take each kept neuron's peak time (first step of its maximum);
3. peak-time entropy: histogram of the kept neurons' peak times in ``n_bins`` equal bins spanning
   ``[earliest peak, latest peak]`` (the last bin closed, as ``numpy.histogram``), ``pseudo_count`` added to
   every bin, normalised, Shannon entropy in nats;
4. ridge-to-background: per kept neuron, ``log(mean activity in the window / mean activity outside it)``
   with the window ``peak - 2 .. peak + 1`` (clipped to the valid steps); averaged over the kept neurons
   whose ratio is defined (both means positive and at least one step outside the window). A kept neuron
   silent outside its window (background 0) has no finite ratio and is left out here; Orhan & Ma's code
   let its +inf through, making the trial's index infinite. How many there were is reported
   (``si_neurons_silent_background``);
5. the trial's index is entropy + mean log ratio.

The index is the mean over trials; trials without a kept neuron (or without a defined ratio) are left out.
Everything is vectorised over trials and neurons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BINS = 20
PSEUDO_COUNT = 0.1
#: The ridge window, relative to the peak: ``peak - WINDOW_BEFORE .. peak + WINDOW_AFTER``, inclusive.
WINDOW_BEFORE = 2
WINDOW_AFTER = 1


@dataclass
class Sequentiality:
    """Per-trial results (``[B]``; NaN where a trial was left out) and their means over the used trials."""

    index: np.ndarray  # [B] entropy + mean log ridge-to-background
    entropy: np.ndarray  # [B] peak-time entropy (nats)
    ridge_to_background: np.ndarray  # [B] mean log ratio over the kept neurons
    n_kept: np.ndarray  # [B] int, neurons above the threshold
    peak_step: np.ndarray  # [B, N] int, each neuron's peak step (all neurons, kept or not)
    kept: np.ndarray  # [B, N] bool
    n_silent_background: np.ndarray  # [B] int, kept neurons with a ridge but no activity outside it

    @property
    def used(self) -> np.ndarray:
        """``[B]`` bool: trials that count towards the index."""
        return np.isfinite(self.index)

    def by_length(self, lengths: np.ndarray) -> dict[int, float]:
        """Mean index of the used trials of each trial length (``lengths [B]``, steps up to and including
        the query). The index grows with the length of the window it is computed over (more room for
        peaks to spread), so conditions with different delays are compared at matched lengths."""
        used = self.used
        return {
            int(length): float(self.index[used & (lengths == length)].mean())
            for length in np.unique(lengths[used])
        }

    def summary(self) -> dict[str, float | int | None]:
        """Scalars for ``summary.json``: means over the used trials (``None`` when no trial counts)."""
        used = self.used

        def mean(values: np.ndarray) -> float | None:
            return float(values[used].mean()) if used.any() else None

        return {
            "sequentiality_index": mean(self.index),
            "sequentiality_peak_entropy": mean(self.entropy),
            "sequentiality_ridge_to_background": mean(self.ridge_to_background),
            "si_neurons_kept": float(self.n_kept.mean()) if len(self.n_kept) else 0.0,
            "si_neurons_silent_background": (
                float(self.n_silent_background.mean()) if len(self.n_kept) else 0.0
            ),
            "si_neurons_total": int(self.kept.shape[1]),
            "si_trials_used": int(used.sum()),
            "si_trials_total": int(len(used)),
        }


def valid_mask(n_steps: int, last_step: np.ndarray | None, batch_size: int) -> np.ndarray:
    """``[B, T]`` bool: steps ``0 .. last_step[b]`` (inclusive); every step when ``last_step`` is None."""
    steps = np.arange(n_steps)[None, :]  # [1, T]
    if last_step is None:
        return np.ones((batch_size, n_steps), dtype=bool)
    last = np.asarray(last_step, dtype=np.int64).reshape(-1, 1)  # [B, 1]
    if last.shape[0] != batch_size:
        raise ValueError(f"last_step has {last.shape[0]} trials, activity has {batch_size}")
    return steps <= last


def sequentiality(
    activity: np.ndarray,
    last_step: np.ndarray | None = None,
    threshold: float = 0.1,
    n_bins: int = N_BINS,
    pseudo_count: float = PSEUDO_COUNT,
) -> Sequentiality:
    """Sequentiality of ``activity [T, B, N]`` (time, trials, neurons) per trial.

    ``last_step [B]``: each trial's last valid step (the query step); ``None`` uses the whole trial.
    """
    activity = np.asarray(activity, dtype=np.float64)
    if activity.ndim != 3:
        raise ValueError(f"activity must have shape [T, B, N], got {activity.shape}")
    T, B, N = activity.shape
    a = np.transpose(activity, (1, 0, 2))  # [B, T, N]
    valid = valid_mask(T, last_step, B)  # [B, T]
    length = valid.sum(axis=1)  # [B]
    v = valid[:, :, None]  # [B, T, 1]

    mean = np.where(v, a, 0.0).sum(axis=1) / np.maximum(length, 1)[:, None]  # [B, N]
    kept = (mean > threshold) & (length > 0)[:, None]  # [B, N]
    n_kept = kept.sum(axis=1)  # [B]
    peak = np.where(v, a, -np.inf).argmax(axis=1)  # [B, N]

    # Peak-time histogram over the span of the kept neurons' peaks. With integer peaks, integer floor
    # division reproduces numpy.histogram's bin edges exactly (last bin closed); a zero span puts every
    # peak in one bin, which is all the entropy depends on.
    big = np.iinfo(np.int64).max
    lo = np.where(kept, peak, big).min(axis=1)  # [B]
    hi = np.where(kept, peak, -1).max(axis=1)  # [B]
    span = np.maximum(hi - lo, 1)[:, None]  # [B, 1]
    offset = np.where(kept, peak - lo[:, None], 0)
    bins = np.minimum(offset * n_bins // span, n_bins - 1)  # [B, N]
    flat = (np.arange(B)[:, None] * n_bins + bins)[kept]
    counts = np.bincount(flat, minlength=B * n_bins).reshape(B, n_bins).astype(np.float64)
    prob = (counts + pseudo_count) / (counts + pseudo_count).sum(axis=1, keepdims=True)  # [B, bins]
    entropy = -(prob * np.log(prob)).sum(axis=1)  # [B]

    # Ridge window peak-2 .. peak+1 against the rest of the valid steps.
    t = np.arange(T)[None, :, None]  # [1, T, 1]
    p = peak[:, None, :]  # [B, 1, N]
    window = (t >= p - WINDOW_BEFORE) & (t <= p + WINDOW_AFTER) & v  # [B, T, N]
    outside = v & ~window
    n_in, n_out = window.sum(axis=1), outside.sum(axis=1)  # [B, N]
    ridge = np.where(window, a, 0.0).sum(axis=1) / np.maximum(n_in, 1)
    background = np.where(outside, a, 0.0).sum(axis=1) / np.maximum(n_out, 1)
    defined = kept & (n_out > 0) & (ridge > 0) & (background > 0)  # [B, N]
    silent_background = kept & (n_out > 0) & (ridge > 0) & (background == 0)  # [B, N]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.where(defined, np.log(np.where(defined, ridge / background, 1.0)), 0.0)
        n_defined = defined.sum(axis=1)
        r2b = np.where(n_defined > 0, log_ratio.sum(axis=1) / np.maximum(n_defined, 1), np.nan)  # [B]
    used = (n_kept > 0) & (n_defined > 0)
    index = np.where(used, entropy + r2b, np.nan)
    return Sequentiality(
        index=index,
        entropy=np.where(used, entropy, np.nan),
        ridge_to_background=np.where(used, r2b, np.nan),
        n_kept=n_kept,
        peak_step=peak,
        kept=kept,
        n_silent_background=silent_background.sum(axis=1),
    )


def sequentiality_index(
    activity: np.ndarray, last_step: np.ndarray | None = None, threshold: float = 0.1
) -> float:
    """The mean sequentiality index over trials (NaN when no trial has a kept neuron)."""
    result = sequentiality(activity, last_step, threshold)
    return float(np.nanmean(result.index)) if result.used.any() else float("nan")


def hold_through_gap(
    activity: np.ndarray, gap_start: np.ndarray, last_step: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Orhan & Ma's layout of variable-delay trials: every trial as long as the longest delay's, its
    state held through a masked gap from the end of its own delay to the end of the longest delay.

    ``activity [T, B, N]`` has each trial's delay end at ``gap_start [B]`` (the first response step) and
    its last step at ``last_step [B]``. Returns the activity ``[T', B, N]`` in which trial ``b`` repeats its
    state of step ``gap_start[b] - 1`` for ``max(gap_start) - gap_start[b]`` steps before its response
    (what their masked recurrent layer outputs over the masked steps), and each trial's new last step.
    Every trial then spans the same number of steps, so the index is computed over windows of one length.
    """
    activity = np.asarray(activity)
    gap_start = np.asarray(gap_start, dtype=np.int64).reshape(-1)
    last_step = np.asarray(last_step, dtype=np.int64).reshape(-1)
    gap = gap_start.max() - gap_start  # [B]
    new_last = last_step + gap
    steps = np.arange(int(new_last.max()) + 1)[:, None]  # [T', 1]
    source = np.where(
        steps < gap_start[None, :],
        steps,
        np.where(steps < (gap_start + gap)[None, :], gap_start[None, :] - 1, steps - gap[None, :]),
    )  # [T', B]
    source = np.clip(source, 0, activity.shape[0] - 1)
    held = np.take_along_axis(activity, source[:, :, None], axis=0)  # [T', B, N]
    return held, new_last
