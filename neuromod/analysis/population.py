"""The population analyses of a trained network, together: where and when it holds the trial's content.

:func:`population_analyses` records the network's signals on fresh trials
(:mod:`~neuromod.analysis.recording`) and runs the analyses named in ``what`` (:data:`WHAT`);
:func:`write_analysis` writes ``analysis.json`` into a run folder (its figures are drawn by the caller:
:mod:`neuromod.plotting.analysis_figures`).
``analysis.json`` holds every curve and map, and under ``scalars`` the figures a sweep's collection
tabulates. Everything runs on the CPU, on a copy of the network.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from neuromod import io
from neuromod.analysis.decoding import as_classes, decode_over_time, trial_groups
from neuromod.analysis.fixed_points import FixedPoints, find_fixed_points
from neuromod.analysis.psychometric import psychometric
from neuromod.analysis.recording import Recording, analysis_batch, delay_map, record
from neuromod.analysis.selectivity import selectivity
from neuromod.analysis.state_space import pca, period_dimensionality
from neuromod.runfolder.folder import RunFolder
from neuromod.tasks.base import Task

log = logging.getLogger(__name__)

#: The analyses, in the order they run.
WHAT = ("decoding", "selectivity", "state_space", "psychometric", "accuracy_by_delay", "fixed_points")
#: Those that run at the end of every run (``analysis.dynamics``); the fixed points on request.
CHEAP = WHAT[:-1]
#: Longer trials are analysed at this many evenly spaced steps (always including the end of the delay).
MAX_STEPS = 60
#: The state-space analysis uses at most this many trials (its cost grows with trials x features^2).
STATE_SPACE_TRIALS = 64
#: Initial states of the search near the trajectory: this many end-of-delay states, as many from other
#: delay steps.
N_FIXED_POINT_STARTS = 16
#: The attractor search iterates the end-of-delay states of this many trials forward, at most
#: ``FORWARD_STEPS`` steps (measured on the default run: the slowest of 64 trials x 20 neurons converge
#: after ~2,000 steps, at state norms up to ~950), and decodes their content from the points reached
#: when at least ``MIN_DECODED_TRIALS`` trials converged.
N_ATTRACTOR_TRIALS = 64
FORWARD_STEPS = 3000
MIN_DECODED_TRIALS = 20


def analysis_steps(recording: Recording) -> np.ndarray:
    """The steps the analyses look at: every step, or :data:`MAX_STEPS` spread over a long trial."""
    T = recording.signals["rates"].shape[0]
    steps = np.unique(np.linspace(0, T - 1, min(T, MAX_STEPS)).round().astype(int))
    if recording.delay_end is not None:
        steps = np.union1d(steps, [recording.delay_end])
    return steps


def population_analyses(
    model: torch.nn.Module,
    task: Task,
    what: tuple[str, ...] = CHEAP,
    n_trials: int = 256,
    seed: int = 0,
    final: dict[str, Any] | None = None,
    fixed_point_iterations: int = 400,
) -> dict[str, Any]:
    """Run the analyses ``what`` on ``model`` (``final``: the run's final metrics, for the accuracy by
    delay). Returns what ``analysis.json`` holds."""
    unknown = [w for w in what if w not in WHAT]
    if unknown:
        raise ValueError(f"unknown analyses {unknown}; choose from {list(WHAT)}")
    started = time.perf_counter()
    threads = torch.get_num_threads()
    # many small operations: one thread is faster than several (measured: 6.8 s against 77 s for the
    # default run's analyses on a busy 2-core machine), and leaves the other cores to other runs
    torch.set_num_threads(1)
    try:
        results = _analyse(model, task, what, n_trials, seed, final, fixed_point_iterations)
    finally:
        torch.set_num_threads(threads)
    results["seconds"] = round(time.perf_counter() - started, 3)
    return results


def _analyse(
    model: torch.nn.Module,
    task: Task,
    what: tuple[str, ...],
    n_trials: int,
    seed: int,
    final: dict[str, Any] | None,
    fixed_point_iterations: int,
) -> dict[str, Any]:
    model = copy.deepcopy(model).cpu().float()
    recording = record(model, task, analysis_batch(task, n_trials, seed))
    steps = analysis_steps(recording)
    correct = task.correct(recording.outputs, recording.batch).float().mean()
    results: dict[str, Any] = {
        "task": task.name,
        "network": type(model).__name__,
        "n_trials": n_trials,
        "delay": int(task.max_delay),
        "accuracy": float(correct),
        "steps": steps.tolist(),
        "delay_end": recording.delay_end,
        "periods": recording.periods,
        "signals": list(recording.signals),
        "contents": list(recording.contents),
        "notes": list(recording.notes),
        "scalars": {},
    }
    if not recording.contents and {"decoding", "selectivity"} & set(what):
        results["notes"].append(f"task {task.name} names no content per trial: no decoding or selectivity")
    for name in what:
        if name == "decoding" and recording.contents:
            results["decoding"] = _decoding(recording, steps, seed, results["scalars"])
        elif name == "selectivity" and recording.contents:
            results["selectivity"] = _selectivity(recording, seed, results["scalars"])
        elif name == "state_space":
            results["state_space"] = _state_space(recording, steps, results["scalars"])
        elif name == "psychometric":
            results["psychometric"] = _psychometric(task, recording, results)
        elif name == "accuracy_by_delay":
            results["accuracy_by_delay"] = _accuracy_by_delay(final)
        elif name == "fixed_points":
            results["fixed_points"] = _fixed_points(model, recording, steps, fixed_point_iterations, results)
    return results


def _decoding(recording: Recording, steps: np.ndarray, seed: int, scalars: dict) -> dict[str, Any]:
    out: dict[str, Any] = {"signals": {}}
    end = recording.delay_end
    groups = trial_groups(recording.batch.inputs)
    out["twins"] = int(recording.batch.batch_size - len(np.unique(groups)))  # trials with an earlier twin
    for name, signal in recording.signals.items():
        curves = decode_over_time(signal[steps], recording.contents, seed=seed, groups=groups)
        out["chance"] = curves.chance
        out["signals"][name] = {
            "accuracy": {k: v.round(4).tolist() for k, v in curves.accuracy.items()},
            "shuffled": {k: v.round(4).tolist() for k, v in curves.shuffled.items()},
        }
        if end is not None:
            at = int(np.searchsorted(steps, end))
            scalars[f"decoding_delay_end.{name}"] = float(np.mean([v[at] for v in curves.accuracy.values()]))
            shuffled = np.mean([v[at] for v in curves.shuffled.values()])
            scalars[f"decoding_shuffled_delay_end.{name}"] = float(shuffled)
    if end is not None:
        scalars["decoding_chance"] = float(np.mean(list(out["chance"].values())))
    return out


def _selectivity(recording: Recording, seed: int, scalars: dict) -> dict[str, Any]:
    """The map at the end of the delay (the last step when the trials have none)."""
    step = recording.delay_end if recording.delay_end is not None else -1
    out: dict[str, Any] = {"step": step, "signals": {}}
    for name, values in recording.per_neuron.items():
        found = selectivity(values[step].numpy(), recording.contents, seed=seed)
        per_content = found.neurons_per_content()
        out["signals"][name] = {
            "information_bits": found.information.round(4).tolist(),
            "selective": found.selective.tolist(),
            "p_values": found.p_values.round(4).tolist(),
            "neurons_per_content": per_content,
        }
        scalars[f"selective_neurons.{name}"] = float(np.mean(list(per_content.values())))
    return out


def _state_space(recording: Recording, steps: np.ndarray, scalars: dict) -> dict[str, Any]:
    """PCA of every signal over the analysed steps of all trials, its dimensionality per period, and the
    mean trajectory of the trials of each class of the first content in the first two components."""
    out: dict[str, Any] = {"signals": {}}
    first = next(iter(recording.contents), None)
    classes = as_classes(recording.contents[first]) if first else np.zeros(recording.batch.batch_size, int)
    out["coloured_by"] = first
    periods = {
        k: (int(np.searchsorted(steps, a)), int(np.searchsorted(steps, b)))
        for k, (a, b) in recording.periods.items()
    }
    for name, signal in recording.signals.items():
        x = signal[steps].numpy()  # [Ts, B, F]
        axes = pca(x[:, :STATE_SPACE_TRIALS].reshape(-1, x.shape[-1]))
        coords = axes.project(x)[..., :2]  # [Ts, B, 2]
        means = np.stack([coords[:, classes == k].mean(1) for k in range(int(classes.max()) + 1)])
        dims = period_dimensionality(x[:, :STATE_SPACE_TRIALS], periods)
        out["signals"][name] = {
            "variance_explained": axes.explained.round(4).tolist(),
            "participation_ratio": {k: round(v, 4) for k, v in dims.items()},
            "class_trajectories": means.round(4).tolist(),  # [C, Ts, 2]
        }
        if "delay" in dims:
            scalars[f"participation_ratio.{name}"] = dims["delay"]
    return out


def _psychometric(task: Task, recording: Recording, results: dict) -> dict[str, Any] | None:
    graded = task.graded_stimulus(recording.batch)
    if graded is None:
        results["notes"].append(f"task {task.name} has no graded stimulus: no psychometric curve")
        return None
    stimulus, x = graded
    choice = task.predict(recording.outputs, recording.batch)
    curve = psychometric(stimulus, x.cpu().numpy(), choice.cpu().numpy())
    # a slope at the fit's bound (choices that separate perfectly) is a lower bound, not a value
    results["scalars"]["psychometric_slope"] = curve.slope if curve.fit.resolved else None
    return {
        "stimulus": stimulus,
        "x": curve.x.round(5).tolist(),
        "p_choice": curve.p.round(4).tolist(),
        "n": curve.n.astype(int).tolist(),
        "bias": curve.bias,
        "slope": curve.slope,
        "slope_ci": list(curve.fit.slope_ci),
        "slope_resolved": curve.fit.resolved,
        "guess": curve.fit.guess,
        "lapse": curve.fit.lapse,
        "threshold": curve.threshold,
    }


def _accuracy_by_delay(final: dict[str, Any] | None) -> dict[str, Any] | None:
    """The held-out test set's accuracy per delay (the validation set's when the run has no test score)."""
    for key in ("test_accuracy_by_delay", "eval_accuracy_by_delay"):
        if final and isinstance(final.get(key), dict):
            return {"source": key, "accuracy": final[key]}
    return None


def _fixed_points(
    model: torch.nn.Module, recording: Recording, steps: np.ndarray, iterations: int, results: dict
) -> dict[str, Any]:
    """Two searches on the delay map (:mod:`neuromod.analysis.fixed_points`):

    - the **attractors** the trials flow to: the end-of-delay states of up to
      :data:`N_ATTRACTOR_TRIALS` trials iterated forward (:data:`FORWARD_STEPS` steps of the map with no
      input, in single precision), then polished with Newton steps (double precision);
    - the fixed and slow points **near the trajectory** (speed minimisation from
      :data:`N_FIXED_POINT_STARTS` end-of-delay states and as many from other delay steps).

    Whether the attractors hold the content is measured, not assumed: the content is decoded
    (cross-validated, folds by trial identity) from the population's attractor (every system's point,
    concatenated) of each trial whose systems all converged, against the same decoder on shuffled labels.
    A count of distinct attractor combinations cannot tell (independent neurons combine into a distinct
    population point for nearly every trial, whatever they store)."""
    found = delay_map(model, recording)
    if found is None:
        return {"available": False, "reason": "; ".join(recording.notes) or "the network has no state map"}
    fast, states = found  # single precision: the forward simulation; states [T, B, K, D]
    double = copy.deepcopy(model).double()  # Newton steps converge to 1e-12 and below: double precision
    step, _ = delay_map(double, recording)
    fast.dtype = next(model.parameters()).dtype
    start, stop = recording.periods.get("delay", (0, states.shape[0]))
    if stop <= start:
        start, stop = 0, states.shape[0]
    B = states.shape[1]
    end_states = states[stop - 1].detach()
    # the attractors reached from the end of the delay
    n = min(N_ATTRACTOR_TRIALS, B)
    attractors = find_fixed_points(
        step, end_states[:n].double(), forward_steps=FORWARD_STEPS, simulate_step=fast
    )
    converged = attractors.is_fixed.all(1).numpy()  # [n] every system of the trial at a fixed point
    # the classical search near the trajectory
    m = min(N_FIXED_POINT_STARTS, B)
    generator = torch.Generator().manual_seed(0)
    other = torch.arange(m, min(2 * m, B))
    at = torch.randint(start, stop, (len(other),), generator=generator)
    initial = torch.cat([end_states[:m], states[at, other]]).detach().double()  # [M, K, D]
    near = find_fixed_points(step, initial, iterations=iterations)
    decoding = _decode_attractors(attractors, converged, recording, results["scalars"])
    counts = attractors.counts()
    near_counts = near.counts()
    signal = "modulator_h" if "modulator_h" in recording.signals else "rates"
    h_width = recording.signals[signal].shape[-1] // states.shape[2]
    labels = attractors.labels.numpy()
    combos = np.unique(labels[converged], axis=0) if converged.any() else np.zeros((0, labels.shape[1]))
    population = attractors.points[torch.as_tensor(converged)][..., :h_width]  # [P, K, h]
    samples = recording.signals[signal][steps][:, :STATE_SPACE_TRIALS]
    axes = pca(samples.reshape(-1, samples.shape[-1]).numpy())
    projected = (
        axes.project(population.reshape(len(population), -1).numpy())[:, :2] if len(population) else None
    )
    norms = attractors.points.norm(dim=-1)  # [n, K]
    scalars = results["scalars"]
    scalars["fixed_points.converged"] = float(converged.mean())
    scalars["fixed_points.attractors_per_system"] = float(counts["fixed"].mean())
    scalars["fixed_points.stable_per_system"] = float(counts["stable"].mean())
    scalars["fixed_points.population"] = int(len(combos))
    scalars["fixed_points.near_trajectory_per_system"] = float(near_counts["fixed"].mean())
    scalars["fixed_points.near_trajectory_not_converged"] = float(near.not_converged.double().mean())
    radius = attractors.spectral_radius[attractors.representative]
    return {
        "available": True,
        "systems": int(states.shape[2]),
        "state_size": int(states.shape[3]),
        "attractors": {
            "trials": n,
            "forward_steps": attractors.forward_steps,
            "converged_fraction": float(converged.mean()),
            "per_system": {k: v.tolist() for k, v in counts.items()},
            "spectral_radius": sorted(radius.double().round(decimals=5).tolist()),
            "population_combinations": int(len(combos)),
            # how far the attractors lie: the norm of the state there (min, median, max over trials x systems)
            "state_norm": [float(q) for q in norms.quantile(torch.tensor([0.0, 0.5, 1.0]).double())],
            "relative_step": [
                float(q) for q in attractors.relative.quantile(torch.tensor([0.0, 0.5, 1.0]).double())
            ],
            "decoding": decoding,
        },
        "near_trajectory": {
            "starts": int(initial.shape[0]),
            "per_system": {k: v.tolist() for k, v in near_counts.items()},
            "not_converged_fraction": float(near.not_converged.double().mean()),
            # the relative step the descent ended at (min, median, max over starts x systems)
            "relative_step": [
                float(q) for q in near.relative.quantile(torch.tensor([0.0, 0.5, 1.0]).double())
            ],
        },
        "signal": signal,
        "pca": [] if projected is None else projected.round(4).tolist(),
    }


def _decode_attractors(
    attractors: FixedPoints, converged: np.ndarray, recording: Recording, scalars: dict
) -> dict[str, Any] | None:
    """Each content decoded from the attractor the trial's state flows to (only trials whose systems all
    converged), against shuffled labels; None with fewer than :data:`MIN_DECODED_TRIALS` such trials."""
    if not recording.contents or int(converged.sum()) < MIN_DECODED_TRIALS:
        return None
    n = len(converged)
    features = attractors.points[torch.as_tensor(converged)].reshape(int(converged.sum()), -1)  # [P, K*D]
    contents = {name: np.asarray(v)[:n][converged] for name, v in recording.contents.items()}
    groups = trial_groups(recording.batch.inputs[:, :n])[converged]
    curves = decode_over_time(features[None].float(), contents, n_shuffles=4, seed=0, groups=groups)
    accuracy = {k: float(v[0]) for k, v in curves.accuracy.items()}
    shuffled = {k: float(v[0]) for k, v in curves.shuffled.items()}
    scalars["fixed_points.decoding"] = float(np.mean(list(accuracy.values())))
    scalars["fixed_points.decoding_shuffled"] = float(np.mean(list(shuffled.values())))
    return {
        "trials": int(converged.sum()),
        "accuracy": accuracy,
        "shuffled": shuffled,
        "chance": curves.chance,
    }


def end_of_run(
    model: torch.nn.Module, task: Task, cfg: DictConfig, path: Path, final: dict[str, Any]
) -> dict[str, Any] | None:
    """The analyses a finished run asks for (``analysis.dynamics``, ``analysis.fixed_points``,
    ``analysis.n_trials``), written into its folder's ``analysis.json``. An analysis must never cost the
    run its result: a failure is logged, and None returned; a file that cannot be written ends the run as
    any other."""
    settings = cfg.analysis
    what = CHEAP + (("fixed_points",) if settings.fixed_points else ())
    try:
        results = population_analyses(model, task, what, int(settings.n_trials), int(cfg.seed), final)
    except Exception:
        log.exception("the population analyses failed (python -m neuromod.analyze %s tries again)", path)
        return None
    scalars = results["scalars"]
    log.info(
        "analyses in %.1f s: decoding at the end of the delay %s (chance %s)",
        results["seconds"],
        ", ".join(
            f"{k.split('.', 1)[1]} {v:.2f}" for k, v in scalars.items() if k.startswith("decoding_delay_end")
        ),
        f"{scalars['decoding_chance']:.2f}" if "decoding_chance" in scalars else "n/a",
    )
    write_analysis(path, results)
    return results


def write_analysis(path: str | Path, results: dict[str, Any]) -> Path:
    """``analysis.json`` into run folder ``path``; returns the file written."""
    target = RunFolder(path, create=False).analysis_path
    with io.writing(target):
        io.write_json(target, results)
    return target
