"""A task's or network's own settings are checked by :mod:`neuromod.validation`: one line naming the key,
the bad value and what is allowed."""

from __future__ import annotations

import math

import pytest

from neuromod import validation
from neuromod.models.hebbian import HebbianRNN
from neuromod.neuron.modulator import check_implementation
from neuromod.tasks import orhan_ma
from neuromod.tasks.cue_go import CueGo
from neuromod.tasks.memorize_report import MemorizeReport
from neuromod.tasks.time_person import TimePerson
from neuromod.validation import ConfigError

CASES = [
    (lambda: CueGo(min_delay=0), "task.min_delay=0 is not allowed: every delay must be >= 1"),
    (lambda: CueGo(cue_step=-1), "task.cue_step=-1 is not allowed: it must be an integer >= 0"),
    (lambda: CueGo(noise_std=-0.5), "task.noise_std=-0.5 is not allowed: it must be a number >= 0"),
    (lambda: CueGo(response_weight=0), "task.response_weight=0 is not allowed: it must be a number > 0"),
    (lambda: MemorizeReport(eval_delays=[0, 3]), "task.eval_delays=[0, 3] is not allowed"),
    (lambda: MemorizeReport(max_memorize_step=-2), "task.max_memorize_step=-2 is not allowed"),
    (lambda: MemorizeReport(tolerance=0), "task.tolerance=0 is not allowed: it must be a number > 0"),
    (lambda: TimePerson(encoding="x"), "task.encoding='x' is not allowed: choose one of"),
    (lambda: TimePerson(people=["a"]), "task.people=['a'] is not allowed: it must be a list of at least 2"),
    (lambda: TimePerson(slots=[]), "task.slots=[] is not allowed"),
    (lambda: TimePerson(lead=-1), "task.lead=-1 is not allowed: it must be an integer >= 0"),
    (lambda: orhan_ma.DelayedEstimation(n_locations=3), "task.n_locations=3 is not allowed: choose one of"),
    (lambda: orhan_ma.GatedDelayedEstimation(cue_factor=1), "task.cue_factor=1 is not allowed: it must be a"),
    (lambda: orhan_ma.Sine(noise_std=-1), "task.noise_std=-1 is not allowed"),
    (lambda: orhan_ma.DelayedEstimation(delays=[]), "task.delays=[] is not allowed"),
    (lambda: orhan_ma.DelayedEstimation(gain=-1), "task.gain=-1 is not allowed"),
    (lambda: orhan_ma.DelayedEstimation(activity_penalty=-1), "task.activity_penalty=-1 is not allowed"),
    (
        lambda: orhan_ma.DelayedEstimation(tolerance=2),
        "task.tolerance=2 is not allowed: it must be a",
    ),
    (lambda: HebbianRNN(3, 2, gamma=-1), "architecture.gamma=-1 is not allowed: it must be a number >= 0"),
    (lambda: HebbianRNN(3, 2, clip=0), "architecture.clip=0 is not allowed: it must be a number > 0"),
    (lambda: check_implementation("nope"), "architecture.implementation='nope' is not allowed"),
]


@pytest.mark.parametrize("make, start", CASES, ids=[start.split(" ")[0] for _, start in CASES])
def test_a_bad_setting_is_one_line_naming_key_value_and_what_is_allowed(make, start):
    with pytest.raises(ConfigError) as raised:
        make()
    message = str(raised.value)
    assert message.startswith(start), message
    assert "\n" not in message


def test_the_interval_and_list_helpers():
    assert validation.interval("k", 0.5, 0, 1) == 0.5
    with pytest.raises(ConfigError, match=r"^k=1 is not allowed: it must be a number in \(0, 1\)$"):
        validation.interval("k", 1, 0, 1)
    assert validation.interval("k", 1, 0, 1, closed="high") == 1
    with pytest.raises(ConfigError, match=r"it must be a number in \[0, 1\]$"):
        validation.interval("k", math.nan, 0, 1, closed="both")
    with pytest.raises(ConfigError, match=r"^k=1 is not allowed: it must be a number > 1$"):
        validation.interval("k", 1, low=1)
    assert validation.optional_number("k", None, positive=True) is None
    with pytest.raises(ConfigError, match=r"^k=0 is not allowed: it must be a number > 0 \(or null\)$"):
        validation.optional_number("k", 0, positive=True)
    assert validation.at_least_items("k", ("a", "b"), 2) == ["a", "b"]
    with pytest.raises(ConfigError, match="^k='ab' is not allowed: it must be a list of at least 2 items$"):
        validation.at_least_items("k", "ab", 2)
    validation.delays_at_least({"a": 1, "b": [1, 2]}, 1, "why")
    with pytest.raises(ConfigError, match=r"^b=\[0, 2\] is not allowed: every delay must be >= 1 \(why\)$"):
        validation.delays_at_least({"a": 1, "b": [0, 2]}, 1, "why")
