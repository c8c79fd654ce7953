"""One experiment, from a composed config to a run folder.

Import from the modules (``neuromod.runner.run``, ``.build``, ``.checks``, ...): this package's
``__init__`` imports nothing, so ``main.py`` can check a config before torch is loaded.
"""
