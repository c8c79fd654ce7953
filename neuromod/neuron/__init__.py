"""The neuron and its modulator.

- :mod:`~neuromod.neuron.population`: :class:`ModulatedNeurons`, the layer of N neurons whose activation
  parameters a shared modulator sets step by step;
- :mod:`~neuromod.neuron.modulator`: :class:`Modulator`, the LSTM cell and head, and its
  ``implementation`` setting;
- :mod:`~neuromod.neuron.kernels`: the hand-written CPU kernels of the LSTM recurrence;
- :mod:`~neuromod.neuron.step_loop`: the feedback step loop on those kernels, as one autograd node.

The activation families themselves are in :mod:`neuromod.activation`.
"""

from neuromod.neuron.modulator import IMPLEMENTATIONS, MODULATOR_SIGNALS, Modulator, params_in_use
from neuromod.neuron.population import ModulatedNeurons

__all__ = ["IMPLEMENTATIONS", "MODULATOR_SIGNALS", "ModulatedNeurons", "Modulator", "params_in_use"]
