"""Networks: neuromodulated architectures and the LSTM / RNN controls.

The neurons themselves and their modulator are in :mod:`neuromod.neuron`. Every network says what it holds
through :class:`~neuromod.models.protocol.AnalysedNetwork` (``recorded_signals``, ``delay_map``,
``memory_per_step``): the population analyses and the memory check ask the network, never its class.
"""

from neuromod.models.architectures import Additive, Factorial, NeuromodulatedNetwork, OneNeuron
from neuromod.models.baselines import LSTMNetwork, RNNNetwork
from neuromod.models.hebbian import HebbianRNN
from neuromod.models.output import ModelOutput
from neuromod.models.protocol import AnalysedNetwork, RecordedSignals, StepMemory
from neuromod.models.recurrent import ModulatedRNN

__all__ = [
    "Additive",
    "AnalysedNetwork",
    "Factorial",
    "HebbianRNN",
    "LSTMNetwork",
    "ModelOutput",
    "ModulatedRNN",
    "NeuromodulatedNetwork",
    "OneNeuron",
    "RNNNetwork",
    "RecordedSignals",
    "StepMemory",
]
