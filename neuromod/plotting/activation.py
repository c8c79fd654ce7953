"""Evaluate a saved run's activation family on a grid, for figures."""

from __future__ import annotations

import importlib

import numpy as np
import torch

from neuromod.activation import ActivationFamily


class FamilyCurve:
    def __init__(self, family: ActivationFamily):
        self.family = family

    def curve(self, x: np.ndarray, params: np.ndarray) -> np.ndarray:
        """``gamma(x; params)`` for ``x [M]`` and one parameter vector ``params [P]``."""
        xs = torch.as_tensor(np.asarray(x, dtype=np.float32))
        p = torch.as_tensor(np.asarray(params, dtype=np.float32)).expand(len(xs), -1)
        with torch.no_grad():
            return self.family.gamma(xs, p).numpy()


def family_from_target(target: str) -> FamilyCurve:
    """``"neuromod.activation.Gain"`` -> a curve evaluator of that family."""
    module_name, _, class_name = target.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    return FamilyCurve(cls())
