# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial: train a network, look inside it, sweep it
#
# This notebook trains a small modulated network on the default task (`time_person`: who had which time
# slot, asked after a delay), loads the run back, plots how its neurons' activation functions move over a
# trial and where the trial's content can be decoded, then runs a 2 x 2 sweep and collects it into a table
# and a plot. It takes about a minute on a laptop CPU and writes everything below the current directory.
#
# The source is [`docs/tutorial.py`](tutorial.py), a Jupytext script: open it as a notebook with
# `jupytext --to notebook docs/tutorial.py` (or in JupyterLab with Jupytext installed), or run it as a
# plain script with `python docs/tutorial.py`. The test suite executes it cell by cell
# (`tests/test_tutorial.py`). On the documentation site the cells are shown without their output: the
# tables and figures appear when you run it.

# %%
from neuromod.api import Figure, collect_sweep, load_run, load_sweep, sweep, train

# %% [markdown]
# ## Train one run
#
# `train` takes the same overrides as `python main.py` and writes the same run folder (`.hydra/`,
# `main.log`, `summary.json`, `metrics.csv`, `checkpoint.pt`, `trials.npz`, `figures/`, ...). This network
# is smaller than the default one (8 neurons, a modulator of 16 units, delays up to 8 steps) so that it
# trains in a few seconds; small networks run fastest on one thread.

# %%
SMALL = [
    "architecture.n_neurons=8",
    "architecture.hidden_size=16",
    "task.max_delay=8",
    "training.batch_size=32",
    "training.eval_every=50",
    "training.progress=false",
    "threads=1",
]
run = train([*SMALL, "training.steps=300"], "tutorial_run")
run

# %% [markdown]
# `run.summary` is `summary.json`; its `final` block holds the last validation metrics and the scores on
# the held-out test trials (assignments of people to slots that training never saw; chance is 0.25).

# %%
{key: run.final[key] for key in ("eval_accuracy", "test_accuracy", "query_swap_accuracy", "chance_accuracy")}

# %% [markdown]
# `run.metrics` is `metrics.csv`, one row per validation evaluation:

# %%
run.metrics[["step", "train_loss", "eval_loss", "eval_accuracy"]]

# %% [markdown]
# ## Load it back
#
# Any run folder can be loaded later, whether `train` or `main.py` wrote it. The network is rebuilt from
# `checkpoint.pt` (which carries the resolved config it was trained with); scoring it again on the run's
# test set gives back the test accuracy of `summary.json`.

# %%
same = load_run("tutorial_run")
network = same.network()
print(type(network).__name__, sum(p.numel() for p in network.parameters()), "parameters")
print("architecture:", same.config.architecture._target_, "| af:", same.config.af._target_)
scores = same.evaluate()
assert abs(scores["test_accuracy"] - run.final["test_accuracy"]) < 1e-6
scores["test_accuracy"]

# %% [markdown]
# ## The activation function over a trial
#
# `trials()` holds the example validation trials the run kept: inputs, targets, outputs, and for each
# neuron its drive and the activation parameters its modulator set at every step.

# %%
trials = same.trials()
{name: trials[name].shape for name in ("inputs", "outputs", "drive", "params")}

# %% [markdown]
# For one trial (by default the longest delay the network answered correctly), each neuron's transfer
# function before the cue, early and late in the delay and at the query; the dots mark the neuron's actual
# drive at that step. The figure is a file in the run's `figures/` folder, shown inline here.

# %%
same.plot_activation_function()

# %% [markdown]
# The parameters themselves over the same trial (with `af=gain` the modulator sets the gain `g`):

# %%
same.plot_activation_params()

# %% [markdown]
# ## Where is the trial's content held?
#
# The population analyses record the network on fresh trials and decode the cued content over time from
# the rates, the activation parameters and the modulators' states (cross-validated, with chance and a
# shuffled-label control). The run already wrote them to `analysis.json`; `analyse` runs them again, here
# on more trials.

# %%
analysis = same.analyse(what=("decoding",), n_trials=256)
{key: round(value, 2) for key, value in analysis["scalars"].items() if key.startswith("decoding_delay_end.")}

# %%
same.plot_decoding(analysis)

# %% [markdown]
# ## A 2 x 2 sweep
#
# `sweep` runs `python main.py --multirun` with the same overrides, here two modulator sizes x two seeds
# (four short runs, one after the other; `hydra/launcher=parallel` would use every core). Figures and
# analyses are switched off to keep it quick.

# %%
folder = sweep(
    [
        *SMALL,
        "training.steps=150",
        "analysis.figures=false",
        "analysis.dynamics=false",
        "architecture.hidden_size=4,16",
        "seed=0,1",
    ],
    "tutorial_sweep",
)
table = load_sweep(folder)
table[["run", "architecture.hidden_size", "seed", "status", "eval_accuracy", "test_accuracy"]]

# %% [markdown]
# The table is a pandas DataFrame: group it as you like.

# %%
table.groupby("architecture.hidden_size")[["eval_accuracy", "test_accuracy"]].agg(["mean", "std"])

# %% [markdown]
# `collect_sweep` writes what `python collect_results.py` writes: `results.csv`, `summary.csv`, a LaTeX
# table and the plots of accuracy against each swept parameter.

# %%
collection = collect_sweep(folder, "tutorial_collection", progress=False)
print([path.name for path in collection.files])
Figure(collection.out_dir / "accuracy_vs_hidden_size.png")
