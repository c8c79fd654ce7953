"""Ensembles (neuromod.ensemble): member k trains as the solo run with its settings would.

Tolerance. A member's figures equal its solo run's to rounding, not bit for bit: the ensemble does the same
arithmetic in other groupings (batched products over members, the modulator's recurrence instead of
``nn.LSTM``/``nn.RNN`` for the controls, evaluation passes over every member's trials at once, the loss's
mean, the clip's norm), and float32 rounding differences of ~1e-7 grow a little
with every update. Over the 20 steps here they stay below 1e-5 relative in every loss (measured: ~1e-7;
~1e-4 after 200 steps); accuracies may differ by at most one trial of the validation set.
"""

from __future__ import annotations

import math

import pytest
import torch

from neuromod.ensemble import EnsembleNetwork, EnsembleTrainer
from neuromod.ensemble.grouping import check_group, group_configs
from neuromod.ensemble.kernels import member_sequence
from neuromod.neuron.kernels import modulator_sequence
from neuromod.runner.run import build_run
from neuromod.training import Diverged
from neuromod.validation import ConfigError
from tests.conftest import compose_config

pytestmark = pytest.mark.usefixtures("one_thread")

#: A small run of about a second: 20 steps, an evaluation every 5.
SMALL = [
    "training.steps=20",
    "training.eval_every=5",
    "training.batch_size=16",
    "training.eval_batch_size=64",
    "training.progress=false",
    "training.grad_clip=0.1",  # small enough to clip: each member's own norm matters
    "architecture.hidden_size=8",
    "task.max_delay=8",
    "device=cpu",
    "threads=1",
    "analysis.dynamics=false",
]
LOSS_RTOL = 1e-5
ACCURACY_ATOL = 1 / 64 + 1e-9  # one trial of the 64 validation trials


def _cfg(architecture: str, *overrides: str):
    extra = ["architecture.n_neurons=4"] if architecture == "additive" else []
    return compose_config([f"architecture={architecture}", *SMALL, *extra, *overrides])


def _solo(cfg, stop_at_accuracy: float | None = None) -> tuple[list[dict], torch.nn.Module, Diverged | None]:
    """The solo run of ``cfg`` (``stop_at_accuracy``: instead of the config's)."""
    experiment = build_run(cfg)
    if stop_at_accuracy is not None:
        experiment.trainer.stop_at_accuracy = stop_at_accuracy
    try:
        experiment.trainer.fit()
        error = None
    except Diverged as diverged:
        error = diverged
    return experiment.trainer.history, experiment.model, error


def _assert_same_rows(solo: list[dict], member: list[dict]) -> None:
    assert [row["step"] for row in member] == [row["step"] for row in solo]
    for a, b in zip(solo, member, strict=True):
        for key in ("train_loss", "eval_loss"):
            assert math.isclose(a[key], b[key], rel_tol=LOSS_RTOL), (key, a, b)
        assert abs(a["eval_accuracy"] - b["eval_accuracy"]) <= ACCURACY_ATOL, (a, b)


@pytest.mark.parametrize(
    ("architecture", "extra"),
    [
        ("additive", []),
        ("lstm", []),
        ("rnn", []),
        ("additive", ["training.loss=mse"]),
        ("additive", ["af=static_learned"]),
        ("factorial", ["task.encoding=factorial", "af=learn_all_params", "training.stop_at_accuracy=null"]),
    ],
)
def test_each_member_gives_its_solo_runs_metrics(architecture, extra):
    # seeds differ; the second member differs in its delays, the last in the learning rate too
    settings = [[*extra, f"seed={k}"] for k in range(3)]
    settings[1].append("task.max_delay=12")  # longer trials: the others' are padded to them
    settings[2].append("training.lr=0.03")
    members = [build_run(_cfg(architecture, *s)) for s in settings]
    ensemble = EnsembleTrainer(members)
    ensemble.fit()
    for k, s in enumerate(settings):
        solo, solo_model, error = _solo(_cfg(architecture, *s))
        assert error is None and ensemble.status(k) == "completed"
        _assert_same_rows(solo, members[k].trainer.history)
        assert len(solo) == 4 and members[k].trainer.step == 20
        # the trained weights are written back into the member's own network
        for p, q in zip(solo_model.parameters(), members[k].model.parameters(), strict=True):
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)


def test_a_diverging_member_is_recorded_and_the_others_go_on():
    settings = [["seed=0"], ["seed=1", "training.lr=1e30"], ["seed=2"]]
    members = [build_run(_cfg("additive", *s)) for s in settings]
    ensemble = EnsembleTrainer(members)
    ensemble.fit()
    solo, _, error = _solo(_cfg("additive", *settings[1]))
    assert error is not None
    assert ensemble.status(1) == "diverged"
    assert ensemble.diverged[1].step == error.step and str(ensemble.diverged[1]) == str(error)
    _assert_same_rows(solo, members[1].trainer.history)
    for k in (0, 2):
        assert ensemble.status(k) == "completed"
        _assert_same_rows(_solo(_cfg("additive", *settings[k]))[0], members[k].trainer.history)


def test_a_stopped_member_stops_changing():
    # a criterion of 0 (below chance: the run's checks refuse it, so it is set on the trainer) is reached
    # at the first evaluation (step 5); the other member trains 20 steps
    settings = [["seed=0"], ["seed=1"]]
    members = [build_run(_cfg("additive", *s)) for s in settings]
    members[0].trainer.stop_at_accuracy = 0.0
    ensemble = EnsembleTrainer(members)
    ensemble.fit()
    stopped = members[0].trainer
    assert stopped.stopped and stopped.step == 5 and len(stopped.history) == 1
    assert members[1].trainer.step == 20
    # its weights are those after step 5 (a solo run stopping there), not after the others' 20 steps
    _, solo_model, _ = _solo(_cfg("additive", *settings[0]), stop_at_accuracy=0.0)
    for p, q in zip(solo_model.parameters(), members[0].model.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)


def test_member_recurrence_is_each_members_own():
    # double precision: the batched recurrence equals the single-network kernel member by member
    generator = torch.Generator().manual_seed(0)
    M, T, S, F, H, P = 3, 6, 5, 2, 4, 2
    shapes = [(M, T, S, F), (M, 4 * H, F), (M, 4 * H), (M, 4 * H, H), (M, P, H), (M, P)]
    args = [torch.randn(*s, generator=generator, dtype=torch.float64, requires_grad=True) for s in shapes]
    raw = member_sequence(*args)  # [M, T, S, P]
    weights = torch.randn(raw.shape, generator=generator, dtype=torch.float64)
    grads = torch.autograd.grad((raw * weights).sum(), args)
    for m in range(M):
        alone = [a[m].detach().requires_grad_() for a in args]
        out = modulator_sequence(*alone).transpose(1, 2)  # [T, S, P]
        torch.testing.assert_close(raw[m], out, rtol=0, atol=1e-12)
        for g, h in zip(grads, torch.autograd.grad((out * weights[m]).sum(), alone), strict=True):
            torch.testing.assert_close(g[m], h, rtol=0, atol=1e-12)


def test_grouping_by_shapes():
    cfgs = [
        _cfg("additive", "seed=0"),
        _cfg("additive", "seed=1", "training.lr=0.03"),
        _cfg("additive", "seed=0", "architecture.hidden_size=4"),
        _cfg("additive", "seed=2", "training.stop_at_accuracy=0.9", "task.max_delay=12"),
    ]
    assert group_configs(cfgs) == [[0, 1, 3], [2]]
    assert group_configs(cfgs, max_members=2) == [[0, 1], [3], [2]]
    check_group([cfgs[0], cfgs[1], cfgs[3]])
    with pytest.raises(ConfigError, match="architecture.hidden_size"):
        check_group(cfgs[:3])


def test_members_whose_shapes_differ_are_refused():
    a = build_run(_cfg("additive", "seed=0"))
    b = build_run(_cfg("additive", "seed=1", "architecture.hidden_size=4"))
    with pytest.raises(ConfigError, match="architecture"):
        EnsembleNetwork([a.model, b.model])
    with pytest.raises(ConfigError, match="training.batch_size"):
        EnsembleTrainer([a, build_run(_cfg("additive", "seed=1", "training.batch_size=8"))])


def test_an_architecture_without_a_batched_form_is_refused():
    one = build_run(compose_config(["architecture=one_neuron", "task=cue_go", *SMALL]))
    with pytest.raises(ConfigError, match="architecture._target_"):
        EnsembleTrainer([one])


def test_run_ensemble_writes_each_jobs_folder_as_its_solo_run(tmp_path):
    import pandas as pd

    from neuromod.ensemble.run import run_ensemble
    from neuromod.runfolder.folder import RunFolder
    from neuromod.runner.run import run

    overrides = [["seed=0", "training.checkpoint_every=10"], ["seed=1", "training.lr=1e30"], ["seed=2"]]
    cfgs = [_cfg("additive", *o) for o in overrides]
    together = run_ensemble(cfgs, [tmp_path / f"ensemble{k}" for k in range(3)])
    for k, cfg in enumerate(cfgs):
        alone = run(cfg, tmp_path / f"solo{k}")
        mine = together[k]
        assert mine["status"] == alone["status"] == ("diverged" if k == 1 else "completed")
        assert mine["steps"] == alone["steps"] and mine.get("error") == alone.get("error")
        assert mine["config"] == alone["config"]
        assert sorted(p.name for p in (tmp_path / f"ensemble{k}").iterdir()) == sorted(
            p.name for p in (tmp_path / f"solo{k}").iterdir()
        )
        if k != 1:  # (the diverged job has no evaluation row, alone or in the ensemble)
            a, b = (pd.read_csv(tmp_path / f"{kind}{k}" / "metrics.csv") for kind in ("solo", "ensemble"))
            assert list(a.columns) == list(b.columns) and list(a["step"]) == list(b["step"])
            _assert_same_rows(a.to_dict("records"), b.to_dict("records"))
            for key in ("test_accuracy", "query_swap_accuracy", "eval_accuracy"):
                assert abs(mine["final"][key] - alone["final"][key]) <= ACCURACY_ATOL, key
            assert math.isclose(mine["final"]["test_loss"], alone["final"]["test_loss"], rel_tol=LOSS_RTOL)
            saved = RunFolder(tmp_path / f"ensemble{k}", create=False).checkpoint_step()
            assert saved == 20


@pytest.mark.parametrize("folder", ["runner", "training", "models", "neuron", "runfolder", "tasks"])
def test_the_floors_below_import_nothing_from_the_ensemble(folder):
    from tests.test_structure import PACKAGE, _imports

    assert not {m for m in _imports(PACKAGE / folder) if m.startswith("neuromod.ensemble")}


def test_run_ensemble_refuses_before_training_and_says_so_in_each_folder(tmp_path):
    import json

    from neuromod.ensemble.run import run_ensemble

    cfgs = [compose_config(["architecture=one_neuron", "task=cue_go", *SMALL, f"seed={k}"]) for k in range(2)]
    with pytest.raises(ConfigError, match="architecture._target_"):
        run_ensemble(cfgs, [tmp_path / "a", tmp_path / "b"])
    for name in ("a", "b"):
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["status"] == "failed" and "architecture._target_" in summary["error"]


def test_a_member_whose_evaluation_is_not_finite_is_recorded_as_its_solo_run():
    # a NaN weight and an evaluation before the first update: the solo run diverges at step 0
    def broken(experiment):
        with torch.no_grad():
            experiment.model.decoder.bias[0] = math.nan
        experiment.trainer.eval_at_start = True
        return experiment

    members = [build_run(_cfg("additive", f"seed={k}")) for k in range(2)]
    for member in members:
        member.trainer.eval_at_start = True
    broken(members[1])
    ensemble = EnsembleTrainer(members)
    ensemble.fit()
    alone = broken(build_run(_cfg("additive", "seed=1")))
    with pytest.raises(Diverged) as error:
        alone.trainer.fit()
    assert ensemble.status(1) == "diverged" and str(ensemble.diverged[1]) == str(error.value)
    assert members[1].trainer.history == [] and members[1].trainer.step == 0
    assert ensemble.status(0) == "completed"
    assert [row["step"] for row in members[0].trainer.history] == [0, 5, 10, 15, 20]


def test_the_benchmark_prints_its_table(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    command = [
        sys.executable,
        "benchmarks/bench_ensemble.py",
        "--ks",
        "1,2",
        "--repeats",
        "1",
        "--warmup",
        "0",
    ]
    done = subprocess.run(
        [*command, "--csv", str(tmp_path / "bench.csv")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "| K | K x solo step (ms) |" in done.stdout and (tmp_path / "bench.csv").exists()


def test_a_member_continues_as_a_solo_run_from_its_state():
    # the weights, Adam's moments and step, the generator and the history a member leaves behind are a
    # solo trainer's state: a solo run resumed from it continues as one that was never interrupted
    member = build_run(_cfg("additive", "seed=0", "training.steps=10"))
    EnsembleTrainer([member, build_run(_cfg("additive", "seed=1", "training.steps=10"))]).fit()
    resumed = build_run(_cfg("additive", "seed=0"))
    resumed.trainer.load_state_dict(member.trainer.state_dict())
    resumed.trainer.fit()
    _assert_same_rows(_solo(_cfg("additive", "seed=0"))[0], resumed.trainer.history)


def test_the_same_seeds_give_the_same_ensemble():
    def history() -> list[list[dict]]:
        members = [build_run(_cfg("additive", f"seed={k}", "training.steps=10")) for k in range(2)]
        EnsembleTrainer(members).fit()
        return [
            [{k: v for k, v in row.items() if k != "wall_time_s"} for row in m.trainer.history]
            for m in members
        ]

    assert history() == history()
