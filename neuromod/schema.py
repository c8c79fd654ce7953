"""The settings no object owns, each with its one default: ``training``, ``analysis`` and ``objective``.

The dataclasses are Hydra structured configs, stored in Hydra's ConfigStore (:func:`register`, done when
:mod:`neuromod.compose` is imported, as ``main.py`` does) and named by the config's defaults lists
(``config/training/default.yaml``: ``- schema``; ``config/config.yaml``: ``- analysis: schema``,
``- objective: schema``). A key's default is written here and nowhere else; a YAML file (a measured
``training/task_architecture/*.yaml``, an ``experiment=`` preset) changes it, a key the schema lacks is
refused by Hydra with its name. The fields accept any value (``Any``): a value's type and range are checked
by :mod:`neuromod.runner.checks` through :mod:`neuromod.validation`, so a bad value gets one line naming
the key, as every other setting does. Needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _adam() -> dict[str, Any]:
    return {"_target_": "torch.optim.Adam", "_partial_": True, "lr": "${training.lr}"}


@dataclass
class TrainingSettings:
    """``training.*``: how a run trains and when it evaluates, checkpoints and stops."""

    #: Training steps (updates).
    steps: Any = 300
    #: Trials per step.
    batch_size: Any = 64
    lr: Any = 0.01
    #: auto: cross_entropy at the query for tasks with a class answer, mse (masked) otherwise.
    loss: Any = "auto"
    #: Gradient norm clip (null: none).
    grad_clip: Any = 1.0
    #: true: draw one set of batch_size trials once and train on all of it at every step (full batch, as
    #: the seed's code does); false: fresh trials every step. Validation and test sets are drawn apart.
    fixed_train_set: Any = False
    #: Evaluate the validation set every this many steps.
    eval_every: Any = 25
    #: Also evaluate before the first update (a metrics.csv row at step 0, train_loss empty).
    eval_at_start: Any = False
    #: Trials of the validation set and of the test set.
    eval_batch_size: Any = 512
    #: Stop as soon as the validation accuracy reaches this (null: run all steps).
    stop_at_accuracy: Any = None
    #: Write checkpoint.pt every this many steps (atomically; 0: only at the end and on Ctrl-C), so a
    #: killed run loses at most this many steps (docs/reliability.md).
    checkpoint_every: Any = 50
    #: Continue from the run folder's checkpoint.pt (same command plus training.resume=true).
    resume: Any = False
    #: A progress bar while training.
    progress: Any = True
    #: The optimiser, built with the network's parameters (``_partial_``).
    optimizer: Any = field(default_factory=_adam)


@dataclass
class AnalysisSettings:
    """``analysis.*``: what a finished run also computes and draws."""

    #: Evaluation trials kept in trials.npz (spread over the evaluated delays).
    n_example_trials: Any = 8
    #: Draw figures/ at the end of a run.
    figures: Any = True
    #: Also write figures/activation_function.gif (the transfer function morphing through a trial).
    animate: Any = False
    frame_stride: Any = 1
    #: Sequentiality index: neurons whose mean activity over a trial exceeds this are kept.
    si_threshold: Any = 0.1
    #: Population analyses at the end of a run (analysis.json + figures; docs/analysis.md): decoding of the
    #: trial's content over time from rates, activation parameters and modulator states, selectivity,
    #: state space, psychometric curve, accuracy by delay. On fresh trials of the longest training delay.
    dynamics: Any = True
    #: Also the fixed points of the delay-period dynamics (slower: tens of seconds; ``python -m
    #: neuromod.analyze <run_dir> what=fixed_points`` runs them on a saved run).
    fixed_points: Any = False
    #: Fresh trials the population analyses use.
    n_trials: Any = 256


@dataclass
class ObjectiveSettings:
    """``objective.*``: what ``main.py`` returns, the value a sweeper (e.g. Optuna) optimises."""

    metric: Any = "eval_accuracy"
    direction: Any = "maximize"
    #: Returned for failed or diverged runs (null: -inf when maximising, +inf when minimising).
    failed_value: Any = None


def register() -> None:
    """Store the schemas in Hydra's ConfigStore (``training/schema``, ``analysis/schema``,
    ``objective/schema``); idempotent."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(group="training", name="schema", node=TrainingSettings)
    store.store(group="analysis", name="schema", node=AnalysisSettings)
    store.store(group="objective", name="schema", node=ObjectiveSettings)
