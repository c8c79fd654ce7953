"""Sweep results: finding a sweep, reading its run folders, and the files written from them.

- :mod:`neuromod.results.sweep_paths`: which sweep (``multirun_paths.txt``, ``path=N``, ``dir=``);
- :mod:`neuromod.results.runs`: every run folder of a sweep read once (``summary.json``, ``.hydra/``);
- :mod:`neuromod.results.hydra_files`: the ``.hydra/`` files read fast (libyaml, OmegaConf's rules);
- :mod:`neuromod.results.tables`: the varying parameters and the tables (CSV, LaTeX);
- :mod:`neuromod.results.collect`: :func:`~neuromod.results.collect.collect`, behind ``collect_results.py``;
- :mod:`neuromod.results.tuning`: a hyperparameter study's ``trials.csv`` and ``best_params.yaml``.

The figures are drawn by :mod:`neuromod.plotting.sweeps` and :mod:`neuromod.plotting.study`. This package's
``__init__`` imports nothing, so the Hydra callbacks can use :mod:`~neuromod.results.sweep_paths` cheaply.
"""
