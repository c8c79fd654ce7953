"""neuromod's resumable Optuna study sweeper (``hydra/sweeper=study``; docs/tuning.md): its settings
(:mod:`.config`), the sweeper (:mod:`.study_sweeper`), the search space (:mod:`._search_space`) and a
stored study between launches (:mod:`._study_state`).

Hydra's plugin scan executes every module here whose name has no leading underscore, again if it was
imported already; the sweeper's logic lives in the underscored modules, imported once, so that its classes
(the errors a caller catches) stay the same objects.
"""
