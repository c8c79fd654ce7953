"""neuromod's settings schemas (``training/schema``, ``analysis/schema``, ``objective/schema``:
:mod:`neuromod.schema`), stored in Hydra's ConfigStore when Hydra discovers its plugins, so that any Hydra
application composing neuromod's ``config/`` finds them, not only ``main.py``."""

from neuromod import schema

schema.register()
