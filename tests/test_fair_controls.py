"""The controls are set up as the model is: the LSTM's forget gate starts as the modulators' does, a
parameter-matched RNN exists, and the speed to criterion is counted in training trials as well as steps
(the RNNs train at a larger batch)."""

from __future__ import annotations

import sys

import pytest
import torch

from neuromod.models import LSTMNetwork
from neuromod.neuron.modulator import FORGET_BIAS
from neuromod.runner.build import build
from neuromod.runner.finish import final_metrics
from tests.conftest import compose_config


def _parameters(overrides: list[str]) -> int:
    _, model = build(compose_config(overrides), torch.device("cpu"))
    return sum(p.numel() for p in model.parameters())


def test_the_lstm_control_starts_with_the_modulators_forget_gate_bias():
    _, model = build(compose_config(["architecture=lstm"]), torch.device("cpu"))
    H = model.lstm.hidden_size
    forget = model.lstm.bias_ih_l0[H : 2 * H] + model.lstm.bias_hh_l0[H : 2 * H]
    assert torch.allclose(forget, torch.full_like(forget, FORGET_BIAS))
    _, modulated = build(compose_config([]), torch.device("cpu"))
    lstm = modulated.neurons.modulator.lstm
    h = lstm.hidden_size
    assert torch.allclose(lstm.bias_ih_l0[h : 2 * h] + lstm.bias_hh_l0[h : 2 * h], forget[:1].expand(h))
    # the other gates keep PyTorch's initialisation; null keeps it for the forget gate too
    torch.manual_seed(0)
    plain = LSTMNetwork(8, 4, hidden_size=16, forget_bias=None)
    torch.manual_seed(0)
    biased = LSTMNetwork(8, 4, hidden_size=16)
    assert torch.equal(plain.lstm.bias_ih_l0[:16], biased.lstm.bias_ih_l0[:16])
    assert torch.equal(plain.lstm.bias_ih_l0[32:], biased.lstm.bias_ih_l0[32:])
    assert plain.lstm.bias_ih_l0[16:32].abs().max() <= 1 / 16**0.5


def test_the_matched_rnn_has_as_many_parameters_as_the_modulated_network():
    model = _parameters([])
    matched = _parameters(["+condition=rnn_matched"])
    assert abs(matched - model) / model < 0.01
    assert _parameters(["architecture=rnn"]) < model / 3  # hidden 64: not a parameter-matched control
    assert abs(_parameters(["architecture=lstm"]) - model) / model < 0.1


class _Trainer:
    def __init__(self, batch_size, accuracies):
        self.batch_size = batch_size
        self.stop_at_accuracy = 0.9
        self.history = [
            {"step": 25 * (i + 1), "eval_accuracy": a, "wall_time_s": float(i), "train_loss": 0.1}
            for i, a in enumerate(accuracies)
        ]
        self.last_eval = type(
            "R", (), {"accuracy": accuracies[-1], "loss": 0.1, "accuracy_by_delay": {}, "extra": {}}
        )()


def test_trials_to_criterion_count_the_batch():
    task = build(compose_config([]), torch.device("cpu"))[0]
    small = final_metrics(_Trainer(64, [0.5, 0.95, 0.99]), task)
    large = final_metrics(_Trainer(256, [0.5, 0.95, 0.99]), task)
    assert small["criterion_step"] == large["criterion_step"] == 50
    assert (small["criterion_trials"], large["criterion_trials"]) == (3200, 12800)
    never = final_metrics(_Trainer(64, [0.5, 0.6]), task)
    assert never["reached_criterion"] == 0 and never["criterion_trials"] is None


def test_a_launcher_whose_plugin_is_not_installed_names_the_extra():
    """After ``make run`` (no extras) a parallel sweep fails in Hydra with "Could not load"; the one line
    says which extra installs the plugin."""
    from hydra.errors import HydraException

    from neuromod.runner.errors import command_line_error

    error = HydraException("In 'hydra/launcher/parallel': Could not load 'hydra/launcher/joblib'.")
    message = command_line_error(error)
    assert message.startswith("In 'hydra/launcher/parallel': Could not load 'hydra/launcher/joblib'")
    assert "make install EXTRAS=sweeps" in message and "\n" not in message
    assert "EXTRAS" not in command_line_error(HydraException("something else went wrong"))


def test_the_study_sweeper_without_optuna_names_the_extra(monkeypatch):
    """``hydra/sweeper=study`` composes without the tune extra; the sweeper says which extra to install
    when the study starts, in one line that the command line prints as it is."""
    from hydra.errors import HydraException

    from hydra_plugins.neuromod_study.study_sweeper import _require_optuna
    from neuromod.runner.errors import command_line_error

    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna fails
    with pytest.raises(HydraException) as caught:
        _require_optuna()
    assert command_line_error(caught.value) == (
        "hydra/sweeper=study needs Optuna, an optional extra: make install EXTRAS=tune "
        "(or pip install -e '.[tune]')"
    )
