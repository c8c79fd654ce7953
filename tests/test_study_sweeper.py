"""The study sweeper's parts, without training: the search space in Hydra's grammar as Optuna
distributions (and back to override lines), the ask-launch-tell loop with a stand-in launcher (job numbers,
batches, failed jobs), the sampler's seed on a continued study, and the settings composing from Hydra's
ConfigStore."""

from __future__ import annotations

import math

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from tests.conftest import CONFIG_DIR

optuna = pytest.importorskip("optuna", reason="the tune extra is not installed")

from hydra_plugins.neuromod_study._search_space import (  # noqa: E402
    StudyError,
    override_text,
    parse_search_space,
)
from hydra_plugins.neuromod_study._study_state import directions_of, make_sampler  # noqa: E402
from hydra_plugins.neuromod_study.study_sweeper import run_trials  # noqa: E402

D = optuna.distributions


def _space(*lines, params=None):
    return parse_search_space(params, list(lines))


@pytest.mark.parametrize(
    "line, expected",
    [
        ("x=choice(8, 16, 32)", D.CategoricalDistribution([8, 16, 32])),
        ("x=choice(gain, learn_all_params)", D.CategoricalDistribution(["gain", "learn_all_params"])),
        ("x=gain,geadah", D.CategoricalDistribution(["gain", "geadah"])),
        ("x=choice(true, false, 0.5)", D.CategoricalDistribution([True, False, 0.5])),
        # range: the values Hydra's basic sweeper runs (stop excluded), in any direction
        ("x=range(1, 10, 3)", D.IntDistribution(1, 7, step=3)),
        ("x=range(10, 0, -2)", D.IntDistribution(2, 10, step=2)),
        ("x=range(4)", D.IntDistribution(0, 3)),
        ("x=shuffle(range(3))", D.IntDistribution(0, 2)),
        ("x=range(0.25, 1.0, 0.25)", D.FloatDistribution(0.25, 0.75, step=0.25)),
        ("x=tag(log, range(1, 9))", D.IntDistribution(1, 8, log=True)),
        ("x=interval(0.5, 2.0)", D.FloatDistribution(0.5, 2.0)),
        ("x=interval(0, 1)", D.FloatDistribution(0.0, 1.0)),  # Hydra's interval is a float one
        ("x=tag(log, interval(1e-4, 3e-2))", D.FloatDistribution(1e-4, 3e-2, log=True)),
        ("x=int(interval(8, 64))", D.IntDistribution(8, 64)),
        ("x=tag(log, int(interval(8, 64)))", D.IntDistribution(8, 64, log=True)),
    ],
)
def test_each_form_of_the_grammar_becomes_its_distribution(line, expected):
    dist = _space(line).distributions["x"]
    assert dist == expected
    assert getattr(dist, "log", False) == ("log" in line)


@pytest.mark.parametrize(
    "line, message",
    [
        ("training.lr=tag(log, interval(0, 1))", "a log scale needs a lower bound above 0"),
        ("training.lr=tag(lg, interval(1e-4, 1))", "unknown tag ['lg']"),
        ("training.lr=tag(log, choice(0.1, 0.01))", "a choice has no scale"),
        ("training.lr=interval(0.1, 0.01)", "lower bound below its upper one"),
        ("training.steps=range(5, 5)", "the range is empty"),
        ("training.steps=tag(log, range(1, 9, 2))", "integers with step 1"),
        ("training.steps=tag(log, range(0, 9))", "at least 1"),
        ("training.lr=tag(log, range(0.1, 0.5, 0.1))", "no float step"),
        ("af=choice(gain, gain)", "lists a value twice"),
        ("af=glob(*)", "list the options with choice"),
        ("~training.lr=choice(0.1, 0.2)", "cannot be searched"),
        ("training.lr=choice(0.1,", "cannot parse"),
    ],
)
def test_a_bad_entry_is_refused_naming_its_key(line, message):
    key = line.partition("=")[0].lstrip("~")
    with pytest.raises(StudyError, match=r"the command line: .*") as caught:
        _space(line)
    assert key in str(caught.value) and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_bad_preset_entry_names_the_sweepers_params():
    with pytest.raises(StudyError, match=r"^hydra.sweeper.params: training.lr .*above 0"):
        _space(params={"training.lr": "tag(log, interval(0.0, 1.0))"})


def test_the_command_line_replaces_the_presets_entry_in_its_place_and_fixed_values_pass_as_written():
    params = {"training.lr": "tag(log, interval(1e-4, 1e-2))", "af": "choice(gain, geadah)", "seed": 3}
    space = _space("training.lr=0.005", "task.eval_delays=[1,2]", "run.note='a b'", params=params)
    assert list(space.distributions) == ["af"]
    assert space.overrides({"af": "geadah"}) == [
        "training.lr=0.005",
        "af=geadah",
        "seed=3",
        "task.eval_delays=[1,2]",
        "run.note='a b'",
    ]
    # and a sweep on the command line replaces a fixed value of the preset
    assert isinstance(
        _space("seed=choice(0, 1)", params=params).distributions["seed"], D.CategoricalDistribution
    )


@pytest.mark.parametrize(
    "value",
    [
        0,
        -3,
        0.01,
        1e-05,
        1e30,
        -math.inf,
        True,
        None,
        "gain",
        "1",
        "true",
        "a b",
        "x,y",
        "it's",
        "${seed}",
        [1, 2],
    ],
)
def test_a_value_is_written_so_that_hydra_reads_it_back_unchanged(value):
    parsed = OverridesParser.create().parse_override(f"k={override_text(value)}").value()
    assert parsed == value and type(parsed) is type(value)


def test_list_choices_reach_the_job_as_the_same_lists():
    space = _space("task.eval_delays=choice([1,2], [3,4,5])")
    dist = space.distributions["task.eval_delays"]
    assert list(dist.choices) == ["[1,2]", "[3,4,5]"]  # Optuna stores scalars
    assert space.overrides({"task.eval_delays": "[3,4,5]"}) == ["task.eval_delays=[3,4,5]"]
    assert _space("name=choice('1', '[1,2]')").overrides({"name": "1"}) == ["name='1'"]


def test_a_continued_study_refuses_another_kind_of_distribution_naming_the_key():
    study = optuna.create_study(study_name="s")
    study.enqueue_trial({"training.lr": 0.01})
    trial = study.ask(_space("training.lr=tag(log, interval(1e-4, 1e-1))").distributions)
    study.tell(trial, 0.5)
    _space("training.lr=tag(log, interval(1e-5, 1.0))").check_compatible(study)  # other bounds: fine
    with pytest.raises(StudyError, match=r"^training.lr: study 's' searched it as a log-scale float"):
        _space("training.lr=interval(1e-4, 1e-1)").check_compatible(study)
    with pytest.raises(StudyError, match="training.lr.*a choice of"):
        _space("training.lr=choice(0.1, 0.01)").check_compatible(study)


def test_a_grid_runs_every_combination_once_and_refuses_an_interval():
    space = _space("a=choice(x, y)", "b=range(1, 4)")
    assert space.grid() == {"a": ["x", "y"], "b": [1, 2, 3]}
    with pytest.raises(StudyError, match="^c: a grid sampler"):
        _space("c=interval(0, 1)").grid()
    node = OmegaConf.create({"_target_": "optuna.samplers.GridSampler", "_partial_": True, "seed": 1})
    sampler = make_sampler(node, 0, space)
    study = optuna.create_study(sampler=sampler)
    seen = {tuple(study.ask(space.distributions).params.values()) for _ in range(6)}
    assert len(seen) == 6


def test_a_seeded_sampler_continues_with_its_seed_plus_the_trials_so_far():
    space = _space("x=interval(0, 1)")
    node = OmegaConf.create({"_target_": "optuna.samplers.RandomSampler", "seed": 5})

    def first_value(sampler):
        return optuna.create_study(sampler=sampler).ask(space.distributions).params["x"]

    assert first_value(make_sampler(node, 0, space)) == first_value(optuna.samplers.RandomSampler(seed=5))
    assert first_value(make_sampler(node, 3, space)) == first_value(optuna.samplers.RandomSampler(seed=8))
    with pytest.raises(StudyError, match="^hydra.sweeper.sampler cannot be built"):
        make_sampler(OmegaConf.create({"_target_": "optuna.samplers.NoSuchSampler"}), 0, space)


def test_directions_are_checked():
    assert directions_of("maximize") == ["maximize"]
    assert directions_of(OmegaConf.create(["minimize", "maximize"])) == ["minimize", "maximize"]
    with pytest.raises(StudyError, match="^hydra.sweeper.direction='maximise'"):
        directions_of("maximise")


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"n_trials": -1}, "hydra.sweeper.n_trials=-1: give a whole number of at least 0"),
        ({"n_jobs": 0}, "hydra.sweeper.n_jobs=0: give a whole number of at least 1"),
        ({"max_failure_rate": 1.5}, "hydra.sweeper.max_failure_rate=1.5: give a fraction in [0, 1]"),
    ],
)
def test_the_sweepers_settings_are_checked_naming_the_key(setting, message):
    from hydra_plugins.neuromod_study.study_sweeper import StudySweeper

    settings = {"n_trials": 4, "n_jobs": 1, "max_failure_rate": 0.0, **setting}
    sweeper = StudySweeper(None, "maximize", None, "s", params=None, **settings)
    with pytest.raises(StudyError) as caught:  # before any launcher is made
        sweeper.setup(hydra_context=None, task_function=None, config=None)
    assert str(caught.value) == message


# --------------------------------------------------------------------------- the ask-launch-tell loop
class StandIn:
    """A launcher: records each call and returns what ``results`` says for each job number."""

    def __init__(self, results):
        self.results, self.calls = results, []

    def __call__(self, batch, first):
        self.calls.append((first, [list(b) for b in batch]))
        returns = []
        for number in range(first, first + len(batch)):
            outcome = self.results(number)
            if isinstance(outcome, Exception):
                returns.append(JobReturn(status=JobStatus.FAILED, _return_value=outcome))
            else:
                returns.append(JobReturn(status=JobStatus.COMPLETED, _return_value=outcome))
        return returns


def test_trials_run_in_batches_with_their_numbers_as_job_numbers():
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    space = _space("x=interval(0, 1)", "seed=0")
    launch = StandIn(lambda number: float(number))
    run_trials(study, space, 5, 2, launch)
    assert [(first, len(batch)) for first, batch in launch.calls] == [(0, 2), (2, 2), (4, 1)]
    assert launch.calls[0][1][0] == [f"x={study.trials[0].params['x']!r}", "seed=0"]
    assert [t.value for t in study.trials] == [0.0, 1.0, 2.0, 3.0, 4.0]
    # an enqueued trial (a lost one, proposed again) comes first and keeps its number
    study.enqueue_trial({"x": 0.25})
    run_trials(study, space, 2, 2, launch)
    assert launch.calls[-1][0] == 5 and launch.calls[-1][1][0][0] == "x=0.25"


def test_a_failed_value_is_a_result_and_a_crashed_job_a_failed_trial():
    study = optuna.create_study(direction="maximize")
    space = _space("x=interval(0, 1)")
    # main.py returns objective.failed_value (-inf by default) for a failed or diverged run: a result the
    # sampler learns from; a job that raises is a failed trial, tolerated up to max_failure_rate
    outcomes = {0: 0.5, 1: -math.inf, 2: RuntimeError("boom"), 3: "not a number"}
    run_trials(study, space, 4, 4, StandIn(outcomes.get), max_failure_rate=0.5)
    states = [t.state for t in study.trials]
    TrialState = optuna.trial.TrialState
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]
    assert study.trials[1].value == -math.inf and study.best_trial.number == 0
    with pytest.raises(RuntimeError, match="boom"):  # over the rate: the job's own error, once told
        run_trials(study, space, 2, 2, StandIn(lambda number: RuntimeError("boom")), max_failure_rate=0.5)
    assert [t.state for t in study.trials[4:]] == [TrialState.FAIL, TrialState.FAIL]


def test_a_batch_that_cannot_be_composed_fails_its_trials_and_stops():
    study = optuna.create_study()

    def validate(batch):
        raise ValueError("af=nope is not an option")

    with pytest.raises(ValueError, match="nope"):
        run_trials(study, _space("af=choice(nope)"), 3, 2, StandIn(lambda n: 0.0), validate=validate)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2


# --------------------------------------------------------------------------- settings from ConfigStore
def _hydra_config(overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
            return compose(config_name="config", overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def test_the_sweeper_and_its_samplers_compose_from_hydras_config_store():
    cfg = _hydra_config(["experiment=tune_time_person"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.neuromod_study.study_sweeper.StudySweeper"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == 123
    assert sweeper.storage == f"sqlite:///{cfg.hydra.sweep.dir}/study.db"
    assert sweeper.direction == cfg.objective.direction == "maximize"
    memory = _hydra_config(["experiment=tune_time_person", "hydra.sweeper.storage=null"])
    assert memory.hydra.sweeper.storage is None
    for name, target in [("random", "RandomSampler"), ("grid", "GridSampler"), ("cmaes", "CmaEsSampler")]:
        cfg = _hydra_config(["hydra/sweeper=study", f"hydra/sweeper/sampler={name}"])
        assert cfg.hydra.sweeper.sampler._target_ == f"optuna.samplers.{target}"
