"""Networks: neuromodulated architectures and the LSTM / RNN controls."""

from neuromod.models.architectures import Additive, Factorial, NeuromodulatedNetwork, OneNeuron
from neuromod.models.baselines import LSTMNetwork, RNNNetwork
from neuromod.models.hebbian import HebbianRNN
from neuromod.models.neurons import ModelOutput, ModulatedNeurons

__all__ = [
    "Additive",
    "Factorial",
    "HebbianRNN",
    "LSTMNetwork",
    "ModelOutput",
    "ModulatedNeurons",
    "NeuromodulatedNetwork",
    "OneNeuron",
    "RNNNetwork",
]
