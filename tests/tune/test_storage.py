"""Leases on trials: which RUNNING trials count as abandoned, and how they are queued again."""

from __future__ import annotations

import os
import time
from pathlib import Path

import optuna
import pytest

from bestiary.tune.storage import HEARTBEAT, MAX_RETRY, OWNER, Leases, open_storage


def running(study: optuna.Study, owner: dict | None, beat: float | None) -> optuna.trial.Trial:
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)})
    trial.set_user_attr("run_dir", f"runs/{trial.number}")
    if owner is not None:
        study._storage.set_trial_system_attr(trial._trial_id, OWNER, owner)
    if beat is not None:
        study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT, beat)
    return trial


@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_abandoned_trials_are_failed_and_queued_with_their_parameters(tmp_path: Path, storage: str) -> None:
    target = f"sqlite:///{tmp_path / 'study.db'}" if storage == "sqlite" else None
    study = optuna.create_study(study_name="s", storage=open_storage(target, tmp_path / "study.journal"))
    leases = Leases(study, heartbeat_s=10)
    now = time.time()
    other_host = running(study, {"host": "elsewhere", "pid": 1}, now - 100)  # heartbeat 100 s old: stale
    busy_host = running(study, {"host": "elsewhere", "pid": 1}, now - 5)  # beating: alive
    alive = running(study, {"host": leases.host, "pid": os.getppid()}, now - 5)  # a live process here
    reused = running(study, {"host": leases.host, "pid": os.getppid()}, now - 100)  # its pid, but no heartbeat
    mine = running(study, None, None)
    leases.acquire(mine)
    gone = running(study, {"host": leases.host, "pid": 2**22 + 12345}, now)  # no such process
    assert sorted(leases.recover()) == sorted([other_host.number, reused.number, gone.number])
    trials = study.get_trials()
    states = {t.number: t.state.name for t in trials}
    assert states[busy_host.number] == states[alive.number] == states[mine.number] == "RUNNING"
    retries = [t for t in trials if t.state.name == "WAITING"]
    assert sorted(t.system_attrs["failed_trial"] for t in retries) == sorted([other_host.number, reused.number, gone.number])
    for t in retries:
        original = trials[t.system_attrs["failed_trial"]]
        assert t.params == original.params and t.user_attrs["run_dir"] == original.user_attrs["run_dir"]
        assert OWNER not in t.system_attrs  # a retry starts unowned
    leases.close()


def test_retries_stop_after_max_retry(tmp_path: Path) -> None:
    study = optuna.create_study(storage=open_storage(None, tmp_path / "s.journal"))
    leases = Leases(study, heartbeat_s=10)
    for _ in range(MAX_RETRY + 1):
        waiting = [t for t in study.get_trials() if t.state.name == "WAITING"]
        trial = study.ask() if waiting else running(study, None, None)
        if waiting:
            trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        study._storage.set_trial_system_attr(trial._trial_id, OWNER, {"host": leases.host, "pid": 2**22 + 1})
        leases.recover()
    states = [t.state.name for t in study.get_trials()]
    assert states == ["FAIL"] * (MAX_RETRY + 1)  # the original and MAX_RETRY retries, then no more
