"""neuromod's ensemble launcher (``hydra/launcher=ensemble``; docs/sweeps.md): a sweep's jobs that differ only
in what an ensemble keeps per member (seed, learning rate, clip, stop criterion, steps, delays) train
together as one batched computation (:mod:`neuromod.ensemble`), each into its own run folder; the others
run as solo runs through ``main.py``'s task function. Its settings: :mod:`.config`; the launcher:
:mod:`.ensemble_launcher`; the work: the underscored modules (Hydra's plugin scan executes every module
here whose name has no leading underscore, again if it was imported already).
"""
