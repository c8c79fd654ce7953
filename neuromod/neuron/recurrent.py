"""Modulated neurons stepped through time one step at a time, for what the fused paths of
:class:`~neuromod.neuron.ModulatedNeurons` cannot run: a drive that depends on the network's own previous
rates (a recurrent network of modulated neurons), recurrent noise, and the causal lesions.

One step, for B trials x N neurons at once (never a loop over neurons or trials):

    drive_t = external_t + W_rec r_{t-1} (+ noise_t)
    (h_t, c_t) = LSTM cell(signals(drive_t, input_t, r_{t-1}), (h_{t-1}, c_{t-1}))   (the modulator)
    params_t = to_params(head(h_{t-lag}))   (initial values for t < lag)
    r_t = gamma(drive_t; params_t)

A :class:`Lesion` names the steps of each trial where a part of this is cut (see docs/lesions.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

#: The lesions a network may take, and what each does over its steps (``steps [T, B]``, bool):
#:
#: - ``modulator_clamp``: every neuron's modulator state (h, c) is held at its value entering the span
#:   (the delay): the chemistry takes in nothing new, but keeps what it took in during the cue;
#: - ``modulator_blind``: the same hold over the cue and the delay, at the state before the first cue:
#:   the chemistry takes in none of the cues (what it holds of them is gone);
#: - ``parameter_freeze``: the activation parameters are held at the value they had on the step before
#:   the span (from the cue's first step to the trial's end): the transfer function never changes after
#:   the cue arrives;
#: - ``recurrent_cut``: the recurrent input is zero over the span (the delay): the network's dynamics
#:   carry nothing from one step to the next.
LESIONS = ("modulator_clamp", "modulator_blind", "parameter_freeze", "recurrent_cut")


@dataclass
class Lesion:
    """The steps ``[T, B]`` (bool) of each lesion, None where a lesion is not applied."""

    modulator_clamp: Tensor | None = None
    parameter_freeze: Tensor | None = None
    recurrent_cut: Tensor | None = None

    @classmethod
    def named(cls, name: str, steps: Tensor) -> Lesion:
        """The lesion ``name`` (one of :data:`LESIONS`) over ``steps [T, B]``."""
        if name not in LESIONS:
            raise ValueError(f"unknown lesion {name!r}; known: {list(LESIONS)}")
        # the blind modulator is the clamp over a longer span
        return cls(**{"modulator_clamp" if name == "modulator_blind" else name: steps.bool()})


def run_neurons(
    neurons,
    external: Tensor,
    inputs: Tensor,
    w_rec: Tensor | None = None,
    noise: Tensor | None = None,
    lesion: Lesion | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Step ``neurons`` (a :class:`~neuromod.neuron.ModulatedNeurons`) through a trial.

    ``external [T, B, N]``: the drive from outside the neurons (input weights and bias); ``inputs
    [T, B, D]``: the network's input (the modulator's ``input`` signal); ``w_rec [N, N]``: recurrent weights
    (None: the neurons are not connected); ``noise [T, B, N]``: added to the drive. Returns rates
    ``[T, B, N]``, the parameters used ``[T, B, N, P]`` and the drive ``[T, B, N]``.
    """
    family, modulator = neurons.activation, neurons.modulator
    lesion = lesion or Lesion()
    T, B, N = external.shape
    P = family.n_params
    initial = family.initial_params().to(external).expand(B, N, P)
    if modulator is None:
        raw = family.initial_raw if neurons.static_raw is None else neurons.static_raw
        constant = family.to_params(raw).to(external).expand(B, N, P)
    else:
        lstm = modulator.lstm
        weights = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
        h = c = external.new_zeros(B * N, modulator.hidden_size)
    rate = external.new_zeros(B, N)  # r_{t-1}, zero before the trial
    frozen = initial
    produced: list[Tensor] = []
    rates, used, drives = [], [], []
    # unbind, not x[t]: indexing one step would make autograd build a full zero gradient per step
    external_steps, input_steps = external.unbind(0), inputs.unbind(0)
    noise_steps = None if noise is None else noise.unbind(0)
    for t in range(T):
        drive = external_steps[t]
        if w_rec is not None:
            recurrent = rate @ w_rec.T
            if lesion.recurrent_cut is not None:
                recurrent = torch.where(lesion.recurrent_cut[t, :, None], 0.0, recurrent)
            drive = drive + recurrent
        if noise_steps is not None:
            drive = drive + noise_steps[t]
        if modulator is None:
            params = constant
        else:
            signals = neurons._signals(drive, input_steps[t], rate).reshape(B * N, -1)
            h_new, c_new = torch.lstm_cell(signals, (h, c), *weights)
            if lesion.modulator_clamp is not None:
                held = lesion.modulator_clamp[t].repeat_interleave(N)[:, None]  # [B*N, 1]
                h_new, c_new = torch.where(held, h, h_new), torch.where(held, c, c_new)
            h, c = h_new, c_new
            produced.append(family.to_params(modulator.head(h)).reshape(B, N, P))
            params = produced[t - family.lag] if t >= family.lag else initial
        if lesion.parameter_freeze is not None:
            params = torch.where(lesion.parameter_freeze[t, :, None, None], frozen, params)
            frozen = params
        rate = family.gamma(drive, params)
        rates.append(rate)
        used.append(params)
        drives.append(drive)
    return torch.stack(rates), torch.stack(used), torch.stack(drives)
