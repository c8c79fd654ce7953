"""Networks: neuromodulated architectures and the LSTM / RNN controls.

The neurons themselves and their modulator are in :mod:`neuromod.neuron`.
"""

from neuromod.models.architectures import Additive, Factorial, NeuromodulatedNetwork, OneNeuron
from neuromod.models.baselines import LSTMNetwork, RNNNetwork
from neuromod.models.hebbian import HebbianRNN
from neuromod.models.output import ModelOutput

__all__ = [
    "Additive",
    "Factorial",
    "HebbianRNN",
    "LSTMNetwork",
    "ModelOutput",
    "NeuromodulatedNetwork",
    "OneNeuron",
    "RNNNetwork",
]
