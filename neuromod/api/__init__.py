"""neuromod from Python: train, load and analyse runs, run and read sweeps, from a script or a notebook.

```python
from neuromod.api import load_run, load_sweep, sweep, train

run = train(["architecture.n_neurons=8", "training.steps=100"], "outputs/mine")  # as main.py would
run.final["test_accuracy"], run.metrics.tail()     # summary.json's final metrics, metrics.csv
run.plot_activation_function()                     # the transfer function over a recorded trial
run.plot_decoding()                                # where the trial's content can be read out
same = load_run("outputs/mine")                    # any run folder, later
table = load_sweep(sweep(["architecture.hidden_size=4,8", "seed=0,1"], "multirun/mine"))
```

- launching: :func:`train` (one run, composed with Hydra's compose API), :func:`sweep`
  (``main.py --multirun`` in a child process), :func:`run_config` (an already composed config);
  :data:`STANDARD_OBSERVERS` (what ``main.py`` hands a run) — :mod:`neuromod.api.launch`;
- a saved run: :func:`load_run` -> :class:`Run` (config, metrics, summary, the rebuilt network and task,
  the recorded trials, plots, population analyses) — :mod:`neuromod.api.runs`;
- a sweep's results: :func:`load_sweep` (one row per job, as a DataFrame), :func:`collect_sweep` (what
  ``collect_results.py`` writes) — :mod:`neuromod.api.sweeps`.

Importing this package imports neither torch nor the plotting modules; each call imports what it needs.
"""

from typing import TYPE_CHECKING, Any

from neuromod.api.launch import STANDARD_OBSERVERS, SweepError, run_config, sweep, train
from neuromod.api.sweeps import collect_sweep, load_sweep

if TYPE_CHECKING:
    from neuromod.api.runs import CorruptRunError, Figure, NotARunError, Run, load_run

#: Imported on first use: reading a run folder needs the plotting modules (matplotlib), and ``main.py``
#: imports this package for :data:`STANDARD_OBSERVERS` alone.
_FROM_RUNS = ("CorruptRunError", "Figure", "NotARunError", "Run", "load_run")


def __getattr__(name: str) -> Any:
    if name in _FROM_RUNS:
        from neuromod.api import runs

        return getattr(runs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "STANDARD_OBSERVERS",
    "CorruptRunError",
    "Figure",
    "NotARunError",
    "Run",
    "SweepError",
    "collect_sweep",
    "load_run",
    "load_sweep",
    "run_config",
    "sweep",
    "train",
]
