"""The runs index: one SQLite file beside the run directories, for fast listing and comparison.

Each row mirrors a run directory's ``config.json`` and ``summary.json``; the directory stays the
source of truth, so the index can always be rebuilt from it (:meth:`RunsIndex.rebuild`), and it is
rebuilt by itself when its schema is from another version. The columns a listing shows are stored
apart from the JSON documents, so listing thousands of runs decodes no JSON.

The index is only a cache: a damaged file (garbage, truncated, a table dropped) never stops a
run. Recording a run repairs such a file by re-creating it from the run directories; any other
failure to record (a read-only folder, a lock held for minutes) is a warning, never an error.
Reading falls back to scanning the run directories when the file cannot be read, so listing
works in a read-only runs folder; :meth:`RunsIndex.rebuild` replaces the file whatever its state.

Parallel writers (tuning trials, benchmark matrices) lose nothing: the file is in WAL mode, every
write is one short ``BEGIN IMMEDIATE`` transaction that waits for the lock (busy timeout), and a
write that still finds the database busy is retried with backoff rather than dropped.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("bestiary")

FILENAME = "runs.sqlite"
#: Bump when the columns change: an index of another version is rebuilt from the run directories.
SCHEMA_VERSION = 2
#: How long one statement waits for the write lock, then how long retries go on, in seconds.
BUSY_TIMEOUT_S = 30.0
RETRY_FOR_S = 120.0
#: How long :meth:`RunsIndex.rebuild` waits for a lock before it replaces the file instead.
REBUILD_WAIT_S = 2.0

#: The columns of a listing (no JSON documents).
COLUMNS = (
    "id",
    "path",
    "status",
    "arch",
    "dataset",
    "task",
    "strategy",
    "steps",
    "total_steps",
    "monitor",
    "mode",
    "best",
    "best_step",
    "wall_time_s",
    "created",
    "updated",
)
SCHEMA = """
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    status TEXT,
    arch TEXT,
    dataset TEXT,
    task TEXT,
    strategy TEXT,
    steps INTEGER,
    total_steps INTEGER,
    monitor TEXT,
    mode TEXT,
    best REAL,
    best_step INTEGER,
    wall_time_s REAL,
    created REAL,
    updated REAL,
    config TEXT,
    summary TEXT
);
CREATE INDEX runs_created ON runs (created DESC, id DESC);
CREATE INDEX runs_status ON runs (status);
"""
_UPSERT = f"""
INSERT INTO runs ({", ".join(COLUMNS)}, config, summary)
VALUES ({", ".join("?" * (len(COLUMNS) + 2))})
ON CONFLICT(id) DO UPDATE SET {", ".join(f"{c}=excluded.{c}" for c in COLUMNS if c not in ("id", "created"))},
    config=excluded.config, summary=excluded.summary
"""
#: ``new_run_dir`` names start with a local time stamp; it is the run's creation time.
_STAMP = re.compile(r"^(\d{8}-\d{6})-")
T = TypeVar("T")


class RunsIndex:
    """The index of the runs under ``root`` (``root/runs.sqlite``).

    :param root: the folder holding the run directories (``RunConfig.runs_root``).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.file = self.root / FILENAME
        self._ready = False

    # -- writing ------------------------------------------------------------------------------

    def record(self, run_dir: str | Path) -> bool:
        """Insert or update the row of ``run_dir`` from its files (``created`` is kept); return
        whether the index holds it now.

        Never raises for the index's sake: a damaged file is re-created from the run directories
        (this run included), and any other failure is logged as a warning, because the run
        directory, not the index, is the record of the run.
        """
        try:
            values = self._values(Path(run_dir))
            self._write(lambda con: con.execute(_UPSERT, values))
            return True
        except (sqlite3.Error, OSError, ValueError) as exc:
            if _damaged(exc) and self._damaged_file():
                try:
                    self._replace()
                    log.warning("runs index %s was damaged (%s); re-created it from the run directories",
                                self.file, exc)
                    return True
                except (sqlite3.Error, OSError, ValueError) as again:
                    exc = again
            log.warning("runs index %s: could not record %s (%s); the run directory is complete, "
                        "run `bestiary runs rebuild --root %s` to index it", self.file, run_dir, exc, self.root)
            return False

    def rebuild(self) -> int:
        """Re-create every row from the run directories under :attr:`root`; return the count.

        One transaction: readers see the old rows or the new ones. Rows of deleted directories
        go; rows that stay keep their ``created``. Directories whose files cannot be read are
        skipped with a warning. A file that cannot be updated in place (damaged, read-only, or
        locked for longer than :data:`REBUILD_WAIT_S`) is replaced by a new one; an ``OSError``
        means the folder itself cannot be written.
        """
        found = self._scan()

        def replace(con: sqlite3.Connection) -> None:
            ids = {values[0] for values in found}
            gone = [(i,) for (i,) in con.execute("SELECT id FROM runs") if i not in ids]
            con.executemany("DELETE FROM runs WHERE id = ?", gone)
            con.executemany(_UPSERT, found)

        try:
            self._write(replace, wait_s=REBUILD_WAIT_S)
        except sqlite3.Error as exc:
            log.info("runs index %s cannot be updated in place (%s); replacing it", self.file, exc)
            return self._replace()
        return len(found)

    # -- reading ------------------------------------------------------------------------------

    def rows(
        self,
        *,
        limit: int | None = None,
        status: str | Iterable[str] | None = None,
        arch: str | None = None,
        full: bool = False,
    ) -> list[dict[str, Any]]:
        """Runs, newest first.

        :param limit: at most this many (``None`` or 0: all).
        :param status: only runs with this status (or one of these).
        :param arch: fnmatch pattern on the architecture, bare (``toy_*``) or qualified
            (``toyzoo:*``), case-insensitive.
        :param full: also decode ``config`` (all of ``config.json``) and ``summary``.
        """
        where: list[str] = []
        params: list[Any] = []
        if status:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params += statuses
        if arch:
            where.append("bestiary_arch_match(arch, ?)")
            params.append(arch)
        query = f"SELECT {self._columns(full)} FROM runs"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY created DESC, id DESC"
        if limit:
            query += " LIMIT ?"
            params.append(limit)
        return self._read(query, params, full)

    def count(self) -> int:
        """How many runs the index holds (the run directories, when it cannot be read)."""
        return int(self._reading(lambda con: con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]))

    def find(self, ref: str, *, limit: int = 20, full: bool = False) -> list[dict[str, Any]]:
        """Rows that ``ref`` may name: the exact id, else ids starting with it, else ids
        containing it (the random suffix of a run, say). Several rows mean ``ref`` is ambiguous."""
        cols = self._columns(full)
        for query, params in (
            (f"SELECT {cols} FROM runs WHERE id = ?", [ref]),
            # A range on the primary key, not LIKE: ids hold "_", a LIKE wildcard.
            (
                f"SELECT {cols} FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                [ref, ref + "\U0010ffff", limit],
            ),
            (f"SELECT {cols} FROM runs WHERE instr(id, ?) > 0 ORDER BY id LIMIT ?", [ref, limit]),
        ):
            found = self._read(query, params, full) if ref else []
            if found:
                return found
        return []

    def get(self, run: str) -> dict[str, Any] | None:
        """The row (with ``config`` and ``summary``) whose id is ``run``, or the one row that
        :meth:`find` gives for it; ``None`` when none or several match."""
        found = self.find(run, limit=2, full=True)
        return found[0] if len(found) == 1 else None

    # -- internals ----------------------------------------------------------------------------

    def _columns(self, full: bool) -> str:
        return ", ".join([*COLUMNS, "config", "summary"] if full else COLUMNS)

    def _read(self, query: str, params: list[Any], full: bool) -> list[dict[str, Any]]:
        root = self.root.resolve()

        def run(con: sqlite3.Connection) -> list[dict[str, Any]]:
            con.row_factory = sqlite3.Row
            return [_decode(dict(r), root, full) for r in con.execute(query, params)]

        return self._reading(run)

    def _reading(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` on the index, else (no file, or one that cannot be read: damaged, or in a
        read-only folder) on a throw-away in-memory index of the run directories."""
        if self.file.exists():
            try:
                return _retrying(lambda: self._with(work))
            except (sqlite3.Error, OSError) as exc:
                log.warning("runs index %s cannot be read (%s); reading the run directories instead. "
                            "Repair it with `bestiary runs rebuild --root %s`", self.file, exc, self.root)
        con = sqlite3.connect(":memory:", isolation_level=None)
        try:
            con.create_function("bestiary_arch_match", 2, _arch_match, deterministic=True)
            for statement in filter(str.strip, SCHEMA.split(";")):
                con.execute(statement)
            con.executemany(_UPSERT, self._scan())
            return work(con)
        finally:
            con.close()

    def _write(self, work: Callable[[sqlite3.Connection], Any], wait_s: float | None = None) -> None:
        def run(con: sqlite3.Connection) -> None:
            con.execute("BEGIN IMMEDIATE")
            try:
                work(con)
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise

        self.root.mkdir(parents=True, exist_ok=True)
        if wait_s is None:
            _retrying(lambda: self._with(run))
        else:
            self._with(run, wait_s)

    def _with(self, work: Callable[[sqlite3.Connection], T], wait_s: float = BUSY_TIMEOUT_S) -> T:
        with self._connect(wait_s) as con:
            return work(con)

    @contextmanager
    def _connect(self, wait_s: float = BUSY_TIMEOUT_S) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.file, timeout=wait_s, isolation_level=None)
        try:
            # WAL: writers don't block readers. NORMAL sync is safe in WAL mode (a crash of the
            # process loses nothing; a power cut at worst the last commits, which rebuild restores).
            con.execute("PRAGMA synchronous=NORMAL")
            con.create_function("bestiary_arch_match", 2, _arch_match, deterministic=True)
            if not self._ready:
                self._setup(con)
                self._ready = True
            yield con
        finally:
            con.close()

    def _replace(self) -> int:
        """Write a new index of the run directories beside the file, then rename it over the file
        (whatever the old file holds, and whoever holds a lock on it); return the count."""
        created = self._old_created()
        found = [(*v[:14], created.get(v[0], v[14]), *v[15:]) for v in self._scan()]
        tmp = self.root / f".{FILENAME}.rebuild-{os.getpid()}"
        for stale in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
            stale.unlink(missing_ok=True)
        tmp.touch()  # an OSError, not an SQLite one, says the folder cannot be written
        try:
            con = sqlite3.connect(tmp, isolation_level=None)
            try:
                con.execute("PRAGMA journal_mode=WAL")  # stored in the file: it stays WAL after the rename
                con.execute("BEGIN IMMEDIATE")
                for statement in filter(str.strip, SCHEMA.split(";")):
                    con.execute(statement)
                con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                con.executemany(_UPSERT, found)
                con.execute("COMMIT")
            finally:
                con.close()
            # The old file's journal belongs to it alone; left beside the new one, it would be
            # read as the new file's.
            for suffix in ("-wal", "-shm", "-journal"):
                Path(f"{self.file}{suffix}").unlink(missing_ok=True)
            os.replace(tmp, self.file)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._ready = False
        return len(found)

    def _damaged_file(self) -> bool:
        """Whether the file still fails SQLite's own check on a fresh connection: a passing
        error must not make a writer replace a sound index that other processes write to."""
        try:
            with self._connect(REBUILD_WAIT_S) as con:
                return con.execute("PRAGMA quick_check").fetchone()[0] != "ok"
        except sqlite3.OperationalError as exc:
            return _damaged(exc)
        except sqlite3.DatabaseError:
            return True

    def _old_created(self) -> dict[str, float]:
        """``created`` of each row the old file still gives, read-only; nothing when it cannot."""
        if not self.file.exists():
            return {}
        try:
            con = sqlite3.connect(f"{self.file.resolve().as_uri()}?mode=ro", uri=True, timeout=0.5)
            try:
                return {i: c for i, c in con.execute("SELECT id, created FROM runs") if c is not None}
            finally:
                con.close()
        except sqlite3.Error:
            return {}

    def _setup(self, con: sqlite3.Connection) -> None:
        """Create the schema, or re-create it (and the rows) when it is from another version."""
        if con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION and _has_runs(con):
            return
        con.execute("PRAGMA journal_mode=WAL")  # persistent; cannot change inside a transaction
        con.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have set it up while this one waited for the lock.
            if con.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION or not _has_runs(con):
                con.execute("DROP TABLE IF EXISTS runs")
                for statement in filter(str.strip, SCHEMA.split(";")):
                    con.execute(statement)
                con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                # A new, emptied, outdated or damaged index: the run directories say what it holds.
                log.info("runs index %s: (re)creating it from the run directories", self.file)
                con.executemany(_UPSERT, self._scan())
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise

    def _scan(self) -> list[tuple[Any, ...]]:
        """Column values of every readable run directory under :attr:`root`."""
        found = []
        for config in sorted(self.root.glob("*/config.json")):
            try:
                found.append(self._values(config.parent))
            except (OSError, ValueError) as exc:
                log.warning("runs index: skipped %s: %s", config.parent, exc)
        return found

    def _values(self, run_dir: Path) -> tuple[Any, ...]:
        """The column values of a run directory, in ``COLUMNS`` order, then config and summary."""
        run_dir = run_dir.resolve()
        config = json.loads((run_dir / "config.json").read_text())
        summary_file = run_dir / "summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
        if not isinstance(config, dict) or not isinstance(summary, dict):
            raise ValueError("config.json and summary.json must hold JSON objects")
        settings = config.get("config") or {}
        resolved = config.get("resolved") or {}
        best = summary.get("best") or {}
        try:
            path = str(run_dir.relative_to(self.root.resolve()))  # the runs folder may move
        except ValueError:
            path = str(run_dir)
        return (
            run_dir.name,
            path,
            summary.get("status") or config.get("status") or "running",
            resolved.get("arch") or settings.get("arch"),
            resolved.get("dataset") or settings.get("dataset"),
            resolved.get("task"),
            resolved.get("strategy") or settings.get("strategy"),
            summary.get("steps"),
            summary.get("total_steps", resolved.get("total_steps")),
            best.get("metric") or resolved.get("monitor"),
            best.get("mode") or resolved.get("mode"),
            _number(best.get("value")),
            best.get("step"),
            _number(summary.get("wall_time_s")),
            _created(run_dir),
            time.time(),
            json.dumps(config),
            json.dumps(summary),
        )


def _has_runs(con: sqlite3.Connection) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='runs'").fetchone() is not None


def _damaged(exc: BaseException) -> bool:
    """Whether ``exc`` says the file is not a usable index (rather than busy or not writable)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    message = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError):
        return "no such table" in message or "no such column" in message
    return True  # "file is not a database", "database disk image is malformed", ...


def _decode(row: dict[str, Any], root: Path, full: bool) -> dict[str, Any]:
    row["path"] = str(root / row["path"])  # absolute paths (runs outside the root) stay as they are
    if full:
        row["config"] = json.loads(row["config"] or "{}")
        row["summary"] = json.loads(row["summary"] or "{}")
    return row


def _retrying(work: Callable[[], T]) -> T:
    """Run ``work``, retrying with jittered backoff while SQLite says the database is busy.

    The busy timeout covers most waits; this covers the cases SQLite reports at once (a WAL
    snapshot gone stale, recovery by another connection, the first switch to WAL).
    """
    deadline = time.monotonic() + RETRY_FOR_S
    delay = 0.005
    while True:
        try:
            return work()
        except sqlite3.OperationalError as exc:
            message = str(exc).lower()
            if ("locked" not in message and "busy" not in message) or time.monotonic() > deadline:
                raise
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 0.25)


def _arch_match(arch: str | None, pattern: str) -> bool:
    if arch is None:
        return False
    arch, pattern = arch.lower(), pattern.lower()
    return fnmatch.fnmatchcase(arch, pattern) or fnmatch.fnmatchcase(arch.partition(":")[2] or arch, pattern)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _created(run_dir: Path) -> float:
    """When the run started: the stamp in its name, else the directory's modification time."""
    match = _STAMP.match(run_dir.name)
    if match:
        try:
            return time.mktime(time.strptime(match.group(1), "%Y%m%d-%H%M%S"))
        except ValueError:
            pass
    return run_dir.stat().st_mtime
