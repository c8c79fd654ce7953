"""neuromod: networks of neurons whose activation functions are steered by an intracellular modulator."""

__version__ = "0.1.0"
