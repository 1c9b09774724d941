"""The runs index: one SQLite file beside the run directories, for fast listing and comparison.

Each row mirrors a run directory's ``config.json`` and ``summary.json``; the directory stays the
source of truth, so the index can always be rebuilt from it (:meth:`RunsIndex.rebuild`). WAL mode
and a busy timeout let parallel trials write at once without losing rows.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FILENAME = "runs.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    status TEXT,
    arch TEXT,
    dataset TEXT,
    task TEXT,
    strategy TEXT,
    created REAL,
    updated REAL,
    config TEXT,
    summary TEXT
);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created);
"""


class RunsIndex:
    """The index of the runs under ``root`` (``root/runs.sqlite``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.file = self.root / FILENAME

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.root.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.file, timeout=60, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA busy_timeout=60000")
            con.executescript(SCHEMA)
            yield con
        finally:
            con.close()

    def record(self, run_dir: str | Path) -> None:
        """Insert or update the row of ``run_dir`` from its files."""
        run_dir = Path(run_dir).resolve()
        config = json.loads((run_dir / "config.json").read_text())
        summary_file = run_dir / "summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
        resolved = config.get("resolved", {})
        status = summary.get("status") or config.get("status", "running")
        now = time.time()
        with self._connect() as con:
            con.execute(
                """INSERT INTO runs (id, path, status, arch, dataset, task, strategy, created, updated, config, summary)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET path=excluded.path, status=excluded.status,
                     arch=excluded.arch, dataset=excluded.dataset, task=excluded.task,
                     strategy=excluded.strategy, updated=excluded.updated, config=excluded.config,
                     summary=excluded.summary""",
                (run_dir.name, str(run_dir), status, resolved.get("arch"), resolved.get("dataset"),
                 resolved.get("task"), resolved.get("strategy"), run_dir.stat().st_ctime, now,
                 json.dumps(config), json.dumps(summary)),
            )

    def rows(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first."""
        if not self.file.exists():
            return []
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            query = "SELECT * FROM runs ORDER BY created DESC, id DESC"
            cur = con.execute(query + (" LIMIT ?" if limit else ""), (limit,) if limit else ())
            return [_decode(dict(r)) for r in cur]

    def get(self, run: str) -> dict[str, Any] | None:
        """The row whose id is ``run``, or whose id starts with it when only one does."""
        if not self.file.exists():
            return None
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            row = con.execute("SELECT * FROM runs WHERE id = ?", (run,)).fetchone()
            if row is None:
                found = con.execute("SELECT * FROM runs WHERE id LIKE ? || '%'", (run,)).fetchall()
                row = found[0] if len(found) == 1 else None
            return _decode(dict(row)) if row is not None else None

    def rebuild(self) -> int:
        """Re-create every row from the run directories under :attr:`root`; return the count."""
        count = 0
        for config in sorted(self.root.glob("*/config.json")):
            self.record(config.parent)
            count += 1
        return count


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    row["config"] = json.loads(row["config"] or "{}")
    row["summary"] = json.loads(row["summary"] or "{}")
    return row
