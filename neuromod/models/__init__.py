"""Networks: neuromodulated architectures and the LSTM / RNN controls."""

from neuromod.models.architectures import Additive, Factorial, NeuromodulatedNetwork, OneNeuron
from neuromod.models.baselines import LSTMNetwork, RNNNetwork
from neuromod.models.neurons import ModelOutput, ModulatedNeurons

__all__ = [
    "Additive",
    "Factorial",
    "LSTMNetwork",
    "ModelOutput",
    "ModulatedNeurons",
    "NeuromodulatedNetwork",
    "OneNeuron",
    "RNNNetwork",
]
