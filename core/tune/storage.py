"""Where studies live, and how a study survives a killed tuner.

By default a study is a journal file (optuna's ``JournalStorage`` with ``JournalFileBackend``),
the storage optuna recommends for several processes on one machine or a shared file system;
``sqlite:///file.db`` and other database URLs select ``RDBStorage``.

Optuna's own heartbeat only exists for database storages, so trials carry a lease that works on
every storage: the tuner records its host and process id on each trial it runs and refreshes a
heartbeat while the trial trains. Before asking for a trial, every tuner fails the ``RUNNING``
trials whose owner is gone (a dead process on this host, or a heartbeat older than the grace
period) and queues a ``WAITING`` copy with the same parameters and run directory, marked the way
optuna's ``RetryHeartbeatStaleTrialCallback`` marks retries (``failed_trial``,
``retry_history``). The next trial asked for is that copy, which continues the interrupted run.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import StorageError

log = logging.getLogger("bestiary")

OWNER = "bestiary:owner"
HEARTBEAT = "bestiary:heartbeat"
#: How often a running trial refreshes its heartbeat, in seconds; stale after GRACE_FACTOR times.
HEARTBEAT_S = 30.0
GRACE_FACTOR = 4.0
#: How often one trial's parameters are retried after its tuner died.
MAX_RETRY = 3


def open_storage(storage: str | Path | None, default: str | Path) -> Any:
    """An optuna storage for a URL or a journal file path.

    :param storage: ``sqlite:///study.db`` (or another SQLAlchemy URL), ``journal:PATH`` or a plain
        path (a journal file), or ``None`` for ``default``.
    :param default: the journal file used when ``storage`` is ``None``.
    :raises StorageError: a database that cannot be opened (damaged, locked, unreachable).
    """
    # optuna is imported only by tuning code
    import optuna

    target = str(default if storage is None else storage)
    if "://" in target:
        kwargs: dict[str, Any] = {}
        if target.startswith("sqlite"):
            # a long busy timeout: trials of several tuners write at the same moments
            kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
        from sqlalchemy.exc import SQLAlchemyError  # optuna's database storage runs on SQLAlchemy

        try:
            return optuna.storages.RDBStorage(target, **kwargs)
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise StorageError(f"the tuning storage {target} cannot be opened ({type(cause).__name__}: "
                               f"{str(cause).splitlines()[0]}); pass another --storage, or move the file away if it "
                               "is damaged (a new one is created)") from exc
    path = Path(target.removeprefix("journal:"))
    path.parent.mkdir(parents=True, exist_ok=True)
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class Leases:
    """Owner records and heartbeats of the trials this process runs, and recovery of others'.

    :param study: the optuna study.
    :param heartbeat_s: seconds between heartbeats; a trial whose heartbeat is older than
        ``GRACE_FACTOR`` times this is stale even when its owner's host cannot be checked.
    """

    def __init__(self, study: Any, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.study = study
        self.heartbeat_s = heartbeat_s
        self.host = socket.gethostname()
        self._active: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def _storage(self) -> Any:
        return self.study._storage  # optuna exposes no public handle for system attributes

    def acquire(self, trial: Any) -> None:
        """Mark ``trial`` as run by this process and start heartbeats (one thread for all)."""
        with self._lock:
            self._active.add(trial._trial_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="bestiary-tune-heartbeat", daemon=True)
                self._thread.start()
        self._storage.set_trial_system_attr(trial._trial_id, OWNER, {"host": self.host, "pid": os.getpid()})
        self._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT, time.time())

    def release(self, trial: Any) -> None:
        with self._lock:
            self._active.discard(trial._trial_id)

    def close(self) -> None:
        """Stop the heartbeat thread (a later :meth:`acquire` starts a new one)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self._thread, self._stop = None, threading.Event()

    def _beat(self) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        while not self._stop.wait(self.heartbeat_s):
            with self._lock:
                ids = list(self._active)
            for trial_id in ids:
                try:
                    self._storage.set_trial_system_attr(trial_id, HEARTBEAT, time.time())
                except UpdateFinishedTrialError:
                    continue  # the trial just finished: nothing to refresh
                except OSError as exc:  # a storage hiccup: the next beat tries again
                    log.warning("bestiary: heartbeat of trial %d not recorded: %s", trial_id, exc)

    def is_stale(self, trial: Any, now: float) -> bool:
        owner = trial.system_attrs.get(OWNER)
        if owner and owner.get("host") == self.host:
            if owner.get("pid") == os.getpid():
                with self._lock:
                    return trial._trial_id not in self._active
            if not _alive(int(owner.get("pid", -1))):
                return True
        beat = trial.system_attrs.get(HEARTBEAT)
        if beat is None and trial.datetime_start is not None:
            beat = trial.datetime_start.timestamp()
        return beat is not None and now - float(beat) > GRACE_FACTOR * self.heartbeat_s

    def recover(self) -> list[int]:
        """Fail stale ``RUNNING`` trials and queue their retries; return the failed trial numbers."""
        import optuna
        from optuna.trial import TrialState

        now, failed = time.time(), []
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not self.is_stale(trial, now):
                continue
            try:
                if not self._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another tuner recovered it first
            failed.append(trial.number)
            requeue(self.study, trial)
        return failed


def requeue(study: Any, trial: Any) -> bool:
    """Queue a ``WAITING`` copy of a failed trial (same parameters, user attributes and so run
    directory) unless it was retried :data:`MAX_RETRY` times; return whether it was queued."""
    import optuna
    from optuna.trial import TrialState

    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRY:
        return False
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs=trial.user_attrs,
        system_attrs={"failed_trial": trial.system_attrs.get("failed_trial", trial.number), "retry_history": history},
    ))
    return True
