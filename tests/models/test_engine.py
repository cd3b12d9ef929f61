"""The one epoch driver: stop reasons, best-epoch keeping, divergence, interrupts, callbacks."""

import math
import warnings

import numpy as np
import pytest

from neuroplug.models.engine import (
    Callback,
    EpochStats,
    StoppingRule,
    TrainingDivergedError,
    TrainingInterrupted,
    minibatches,
    run_epochs,
    training_session,
)


def _scripted(losses, **extra):
    """An epoch function that returns the given losses in turn."""
    values = iter(losses)

    def epoch(stop):
        return EpochStats(next(values), **extra)

    return epoch


def test_max_iter_history_and_epoch_numbers():
    report = run_epochs(
        _scripted([3.0, 2.0, 1.0], learning_rate=0.1),
        n_epochs=3,
        name="m",
        start_epoch=4,
    )
    assert report.stop_reason == "max_iter" and report.n_epochs == 3
    assert [row["epoch"] for row in report.history] == [5, 6, 7]
    assert [row["loss"] for row in report.history] == [3.0, 2.0, 1.0]
    assert all(
        row["learning_rate"] == 0.1 and row["duration"] >= 0 for row in report.history
    )
    assert report.best_epoch == 7


def test_no_improvement_stops_and_restores_the_best_epoch():
    snapshots, restored = [], []
    state = {"epoch": 0}

    def epoch(stop):
        state["epoch"] += 1
        return EpochStats([1.0, 0.5, 0.6, 0.7, 0.8, 0.9][state["epoch"] - 1])

    rule = StoppingRule(2, 0.0)
    report = run_epochs(
        epoch,
        n_epochs=6,
        name="m",
        stopping=rule,
        keep_best=lambda: snapshots.append(state["epoch"]) or state["epoch"],
        restore=restored.append,
    )
    assert report.stop_reason == "no_improvement" and report.n_epochs == 5
    assert restored == [2] and report.best_epoch == 2


def test_stopping_rule_patience_none_disables_it():
    rule = StoppingRule(None, 0.0)
    for v in [1.0] * 50:
        rule.update(v)
    assert not rule.should_stop
    rule = StoppingRule(3, 0.1, mode="max")
    assert rule.update(0.5)
    assert (
        rule.update(0.55) and rule.count == 1
    )  # a new best, but not better by tol: it counts
    assert not rule.update(0.4) and rule.count == 2


def test_warm_start_best_is_kept_for_counting_but_not_for_snapshots():
    rule = StoppingRule(5, 0.0, best=0.1)
    assert rule.update(0.5)  # this call's first epoch is its best so far ...
    assert (
        rule.count == 1 and rule.best == 0.1
    )  # ... but no improvement on the earlier best


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_loss_raises(value):
    with pytest.raises(TrainingDivergedError, match="diverged.*lower learning_rate"):
        run_epochs(
            _scripted([1.0, value]),
            n_epochs=3,
            name="m",
            advice="Try a lower learning_rate.",
        )


def test_exploding_finite_loss_raises():
    with pytest.raises(
        TrainingDivergedError, match=r"exploded to 1e\+09.*limit for this data is 1000"
    ):
        run_epochs(_scripted([1.0, 1e9]), n_epochs=3, name="m", explode_above=1e3)


def test_exploding_weights_raise():
    with pytest.raises(TrainingDivergedError, match="weights grew to 1e\\+200"):
        run_epochs(_scripted([1.0], weight_scale=1e200), n_epochs=3, name="m")


def test_keyboard_interrupt_in_an_epoch_stops_cleanly_and_warns_once():
    calls = []

    def epoch(stop):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return EpochStats(1.0 / len(calls))

    with pytest.warns(TrainingInterrupted, match="2 complete epoch") as record:
        report = run_epochs(epoch, n_epochs=10, name="m")
    assert report.stop_reason == "interrupted" and report.n_epochs == 2
    assert len([w for w in record if issubclass(w.category, TrainingInterrupted)]) == 1


def test_nested_runs_share_one_stop_flag():
    """A phase interrupted inside a session makes the later phases run no epoch; the owner warns."""

    def interrupted(stop):
        stop.requested = True
        return EpochStats(math.nan, completed=False)

    with warnings.catch_warnings():
        warnings.simplefilter(
            "error", TrainingInterrupted
        )  # only the session's owner may warn
        with training_session() as (flag, owner):
            assert owner
            first = run_epochs(interrupted, n_epochs=5, name="pretraining")
            second = run_epochs(_scripted([1.0] * 5), n_epochs=5, name="training")
            with training_session() as (inner, inner_owner):
                assert inner is flag and not inner_owner
    assert first.stop_reason == second.stop_reason == "interrupted"
    assert second.n_epochs == 0 and flag.requested


def test_callbacks_see_every_epoch_and_can_stop():
    seen = []

    class Stopper(Callback):
        def on_fit_begin(self, info):
            seen.append(("begin", info["name"]))

        def on_epoch_end(self, info):
            seen.append(("epoch", info["epoch"], info["stats"]["loss"]))
            return info["epoch"] == 2

        def on_fit_end(self, info):
            seen.append(("end", info["stop_reason"]))

    report = run_epochs(
        _scripted([3.0, 2.0, 1.0]), n_epochs=3, name="m", callbacks=[Stopper()]
    )
    assert report.stop_reason == "callback" and report.n_epochs == 2
    assert seen == [
        ("begin", "m"),
        ("epoch", 1, 3.0),
        ("epoch", 2, 2.0),
        ("end", "callback"),
    ]


def test_a_failing_callback_names_itself():
    class Broken:
        def on_epoch_end(self, info):
            raise OSError("disk full")

    with pytest.raises(
        RuntimeError, match="Broken.on_epoch_end raised OSError: disk full"
    ):
        run_epochs(_scripted([1.0]), n_epochs=1, name="m", callbacks=[Broken()])


def test_verbose_prints_why_it_stopped(capsys):
    run_epochs(
        _scripted([1.0, 1.0, 1.0]),
        n_epochs=3,
        name="m",
        verbose=1,
        stopping=StoppingRule(1, 0.1),
    )
    err = capsys.readouterr().err
    assert (
        "m: stopped after 3 epoch(s): the training loss did not improve by tol=0.1 for 2 epochs"
        in err
    )


def test_verbose_2_prints_one_table_row_per_epoch(capsys):
    run_epochs(_scripted([3.0, 2.0], val_score=0.5), n_epochs=2, name="m", verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["epoch", "loss", "val_loss", "val_score", "lr", "time"]
    assert out[1].split()[:2] == ["1", "3"] and out[2].split()[:2] == ["2", "2"]


def test_minibatches_cover_every_row_once():
    rng = np.random.default_rng(0)
    batches = list(minibatches(10, 3, rng))
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert sorted(np.concatenate(batches)) == list(range(10))
    assert np.concatenate(list(minibatches(5, 2, None))).tolist() == [0, 1, 2, 3, 4]
