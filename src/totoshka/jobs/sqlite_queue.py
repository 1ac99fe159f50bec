"""The embedded, persistent job queue: one SQLite file in WAL mode.

Why SQLite: a single-machine bot needs jobs that survive a restart and nothing to
operate. WAL lets readers (position, stats) proceed while a writer commits; every
write is one ``BEGIN IMMEDIATE`` transaction, so two processes (the bot and a
`WorkerPool` in another process, or a pool restarted beside a dying one) never
claim the same job. Each thread gets its own connection (sqlite3 connections are
not meant to be shared between threads).

Crash safety: a claimed job records its ``owner`` (``host:pid:uuid``) and a
``lease_until`` the pool keeps renewing. `recover` puts back ``running`` jobs whose
owner is a dead local process or whose lease ran out; the attempt it already used is
counted, so a job that kills its worker every time ends up ``failed``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from totoshka.jobs.fairness import round_robin_position
from totoshka.jobs.queue import (
    JobRecord,
    JobState,
    QueueUnavailable,
    SubmitResult,
    TooManyPending,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    user_key    TEXT NOT NULL,
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempt     INTEGER NOT NULL DEFAULT 0,
    deferrals   INTEGER NOT NULL DEFAULT 0,
    dedupe_key  TEXT UNIQUE,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    not_before  REAL NOT NULL,
    started_at  REAL,
    finished_at REAL,
    last_error  TEXT,
    owner       TEXT,
    lease_until REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_state_user ON jobs(state, user_key, seq);
CREATE TABLE IF NOT EXISTS checkpoints (
    job_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (job_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users (
    user_key    TEXT PRIMARY KEY,
    last_served INTEGER NOT NULL
) WITHOUT ROWID;
"""

# `JobRecord` fields read as they are from their column (job_id is the column `id`,
# payload and state are converted, checkpoints have a table of their own)
_CONVERTED = ("job_id", "payload", "state", "checkpoints")
_PLAIN_COLUMNS = [f.name for f in dataclasses.fields(JobRecord) if f.name not in _CONVERTED]
_COLUMNS = ", ".join(["id", "payload", "state", *_PLAIN_COLUMNS])

Listener = Callable[[], None]


def _error_text(error: BaseException | str | None) -> str | None:
    if error is None:
        return None
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error
    return text[:2000]


def make_owner_id() -> str:
    """``host:pid:random`` — lets `recover` tell a dead local process at once."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_is_dead_local(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # this process: only its own pool knows whether the job still runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class SQLiteJobQueue:
    """Persistent `JobQueue` in one SQLite file; safe for threads and for processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        # CREATE ... IF NOT EXISTS: safe when two processes open the same file at once.
        self._conn().executescript(_SCHEMA)

    # -- plumbing -----------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: an accepted job must survive a power cut too, not just a kill.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock up front (no upgrade races)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this object opened (any thread)."""
        with self._lock:
            conns, self._connections = self._connections, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener()`` (from the submitting thread) after each accepted submit.

        The in-process `WorkerPool` uses it to wake up at once instead of polling.
        """
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    @staticmethod
    def _record(row: sqlite3.Row, checkpoints: dict[str, Any] | None = None) -> JobRecord:
        return JobRecord(
            job_id=row["id"],
            payload=json.loads(row["payload"]),
            state=JobState(row["state"]),
            checkpoints=checkpoints or {},
            **{k: row[k] for k in _PLAIN_COLUMNS},
        )

    @staticmethod
    def _checkpoints(db: sqlite3.Connection, job_id: str) -> dict[str, Any]:
        rows = db.execute("SELECT key, value FROM checkpoints WHERE job_id = ?", (job_id,))
        return {r["key"]: json.loads(r["value"]) for r in rows}

    # -- JobQueue -----------------------------------------------------------------

    def submit(
        self,
        user_key: str,
        payload: dict[str, Any],
        *,
        max_pending: int | None = None,
        dedupe_key: str | None = None,
    ) -> SubmitResult:
        """Store a job as ``queued`` (durably) and return its id and place in line."""
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        now = time.time()
        with self._write() as db:
            if dedupe_key is not None:
                row = db.execute(
                    "SELECT id, state FROM jobs WHERE dedupe_key = ?", (dedupe_key,)
                ).fetchone()
                if row is not None:
                    existing = row["id"]
                    pos = self._position(db, existing) if row["state"] == "queued" else None
                    return SubmitResult(existing, pos or 0, duplicate=True)
            if max_pending is not None:
                pending = self._pending(db, user_key)
                if pending >= max_pending:
                    raise TooManyPending(max_pending)
            job_id = uuid.uuid4().hex
            db.execute(
                "INSERT INTO jobs (id, user_key, payload, state, dedupe_key, created_at,"
                " updated_at, not_before) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)",
                (job_id, user_key, text, dedupe_key, now, now, now),
            )
            pos = self._position(db, job_id)
        for listener in list(self._listeners):
            with contextlib.suppress(Exception):
                listener()
        return SubmitResult(job_id, pos or 0)

    def cancel_user(self, user_key: str) -> list[str]:
        now = time.time()
        with self._write() as db:
            ids = [
                r["id"]
                for r in db.execute(
                    "SELECT id FROM jobs WHERE user_key = ? AND state = 'queued' ORDER BY seq",
                    (user_key,),
                )
            ]
            db.execute(
                "UPDATE jobs SET state = 'cancelled', updated_at = ?, finished_at = ?"
                " WHERE user_key = ? AND state = 'queued'",
                (now, now, user_key),
            )
        return ids

    def position(self, job_id: str) -> int | None:
        return self._position(self._conn(), job_id)

    def pending_count(self, user_key: str) -> int:
        return self._pending(self._conn(), user_key)

    def ping(self) -> None:
        """Raise `QueueUnavailable` unless the database answers (the /readyz check)."""
        try:
            self._conn().execute("SELECT 1 FROM jobs LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise QueueUnavailable("job database", exc) from exc

    def stats(self) -> dict[str, int]:
        counts = {state.value: 0 for state in JobState}
        for row in self._conn().execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"):
            counts[row["state"]] = row["n"]
        return counts

    @staticmethod
    def _pending(db: sqlite3.Connection, user_key: str) -> int:
        row = db.execute(
            "SELECT COUNT(*) FROM jobs WHERE user_key = ? AND state IN ('queued', 'running')",
            (user_key,),
        ).fetchone()
        return int(row[0])

    @staticmethod
    def _position(db: sqlite3.Connection, job_id: str) -> int | None:
        """Place in the fair order (see `fairness`); deferred jobs count as queued."""
        me = db.execute("SELECT user_key, state FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if me is None or me["state"] != "queued":
            return None
        users = db.execute(
            "SELECT j.user_key AS user_key, COUNT(*) AS n FROM jobs j"
            " LEFT JOIN users u ON u.user_key = j.user_key"
            " WHERE j.state = 'queued' GROUP BY j.user_key"
            " ORDER BY COALESCE(u.last_served, -1), MIN(j.seq)"
        ).fetchall()
        lengths = [int(u["n"]) for u in users]
        # each SELECT reads its own snapshot: a worker may have claimed the job between
        # the two (no place in line any more). A bare next() would raise StopIteration,
        # which an executor future cannot carry: the awaiting job would hang for good.
        user_index = next((i for i, u in enumerate(users) if u["user_key"] == me["user_key"]), None)
        if user_index is None:
            return None
        job_index = db.execute(
            "SELECT COUNT(*) FROM jobs WHERE user_key = ? AND state = 'queued'"
            " AND seq < (SELECT seq FROM jobs WHERE id = ?)",
            (me["user_key"], job_id),
        ).fetchone()[0]
        return round_robin_position(lengths, user_index, int(job_index))

    # -- records, checkpoints -----------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        """The stored job with its checkpoints, or None."""
        db = self._conn()
        row = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        return self._record(row, self.job_state(job_id))

    def jobs(self, user_key: str | None = None) -> list[JobRecord]:
        """All stored jobs (of one user), oldest first; for admin views and tests."""
        where, args = ("WHERE user_key = ?", (user_key,)) if user_key is not None else ("", ())
        rows = self._conn().execute(f"SELECT {_COLUMNS} FROM jobs {where} ORDER BY seq", args)
        return [self._record(r) for r in rows]

    def running(self) -> list[JobRecord]:
        """The running jobs, longest-running first: what `totoshka jobs status` lists
        without reading every finished job `jobs` would."""
        rows = self._conn().execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE state = 'running' ORDER BY started_at, seq"
        )
        return [self._record(r) for r in rows]

    def mark(self, job_id: str, key: str, value: Any) -> None:
        """Durably set checkpoint ``key`` of a job to ``value`` (JSON-serialisable)."""
        text = json.dumps(value, ensure_ascii=False)
        with self._write() as db:
            db.execute(
                "INSERT INTO checkpoints (job_id, key, value) VALUES (?, ?, ?)"
                " ON CONFLICT (job_id, key) DO UPDATE SET value = excluded.value",
                (job_id, key, text),
            )

    def job_state(self, job_id: str) -> dict[str, Any]:
        """The job's checkpoints (``{}`` if none): what earlier runs already did."""
        return self._checkpoints(self._conn(), job_id)

    def purge(self, older_than: float) -> int:
        """Delete finished jobs (and their checkpoints) finished before ``older_than``."""
        with self._write() as db:
            db.execute(
                "DELETE FROM checkpoints WHERE job_id IN (SELECT id FROM jobs"
                " WHERE state IN ('done', 'failed', 'cancelled') AND finished_at < ?)",
                (older_than,),
            )
            cur = db.execute(
                "DELETE FROM jobs WHERE state IN ('done', 'failed', 'cancelled')"
                " AND finished_at < ?",
                (older_than,),
            )
            return cur.rowcount

    # -- worker side --------------------------------------------------------------

    def claim(self, owner: str, lease_s: float) -> JobRecord | None:
        """Take the next job in fair order and mark it ``running`` for ``owner``.

        The next job is the oldest ready job of the user served least recently (never
        served counts as longest ago; ties go to the user with the oldest job).
        """
        now = time.time()
        with self._write() as db:
            user = db.execute(
                "SELECT j.user_key AS user_key FROM jobs j"
                " LEFT JOIN users u ON u.user_key = j.user_key"
                " WHERE j.state = 'queued' AND j.not_before <= ? GROUP BY j.user_key"
                " ORDER BY COALESCE(u.last_served, -1), MIN(j.seq) LIMIT 1",
                (now,),
            ).fetchone()
            if user is None:
                return None
            row = db.execute(
                "SELECT id FROM jobs WHERE user_key = ? AND state = 'queued'"
                " AND not_before <= ? ORDER BY seq LIMIT 1",
                (user["user_key"], now),
            ).fetchone()
            job_id = row["id"]
            db.execute(
                "UPDATE jobs SET state = 'running', attempt = attempt + 1, started_at = ?,"
                " updated_at = ?, owner = ?, lease_until = ? WHERE id = ?",
                (now, now, owner, now + lease_s, job_id),
            )
            db.execute(
                "INSERT INTO users (user_key, last_served) VALUES"
                " (?, (SELECT COALESCE(MAX(last_served), 0) + 1 FROM users))"
                " ON CONFLICT (user_key) DO UPDATE SET last_served = excluded.last_served",
                (user["user_key"],),
            )
            job = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            checkpoints = self._checkpoints(db, job_id)
        return self._record(job, checkpoints)

    def _finish_running(self, job_id: str, owner: str, now: float, sets: str, *args: Any) -> bool:
        """Apply ``sets`` to a job ``owner`` still runs, which then holds it no more."""
        with self._write() as db:
            cur = db.execute(
                f"UPDATE jobs SET {sets}, updated_at = ?, owner = NULL, lease_until = NULL"
                " WHERE id = ? AND state = 'running' AND owner = ?",
                (*args, now, job_id, owner),
            )
            return cur.rowcount == 1

    def complete(self, job_id: str, owner: str) -> bool:
        """Mark done. False if ``owner`` no longer holds the job (its lease was taken)."""
        now = time.time()
        return self._finish_running(job_id, owner, now, "state = 'done', finished_at = ?", now)

    def fail(self, job_id: str, owner: str, error: BaseException | str | None) -> bool:
        """Mark failed for good (attempts used up): the poison job stops here."""
        now = time.time()
        sets = "state = 'failed', finished_at = ?, last_error = ?"
        return self._finish_running(job_id, owner, now, sets, now, _error_text(error))

    def retry(
        self,
        job_id: str,
        owner: str,
        delay: float,
        error: BaseException | str | None,
        *,
        deferral: bool = False,
    ) -> bool:
        """Put a running job back in line to run after ``delay`` seconds."""
        now = time.time()
        sets = "state = 'queued', not_before = ?, last_error = ?, deferrals = deferrals + ?"
        return self._finish_running(
            job_id, owner, now, sets, now + delay, _error_text(error), 1 if deferral else 0
        )

    def release(self, job_id: str, owner: str) -> bool:
        """Give a job back untouched (pool shut down mid-job): the attempt is refunded."""
        now = time.time()
        sets = "state = 'queued', not_before = ?, attempt = MAX(attempt - 1, 0)"
        return self._finish_running(job_id, owner, now, sets, now)

    def renew(self, owner: str, lease_s: float) -> None:
        """Extend the lease of every job ``owner`` runs (the pool's heartbeat)."""
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET lease_until = ? WHERE state = 'running' AND owner = ?",
                (time.time() + lease_s, owner),
            )

    def recover(self, max_attempts: int) -> tuple[list[JobRecord], list[JobRecord]]:
        """Requeue ``running`` jobs whose worker is gone; fail those out of attempts.

        Gone = owner is a dead process on this host, or its lease expired. Returns
        ``(requeued, failed)``.
        """
        now = time.time()
        requeued: list[JobRecord] = []
        failed: list[JobRecord] = []
        with self._write() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS}, owner, lease_until FROM jobs WHERE state = 'running'"
            ).fetchall()
            for row in rows:
                owner = row["owner"] or ""
                expired = row["lease_until"] is None or row["lease_until"] < now
                if not (expired or _owner_is_dead_local(owner)):
                    continue
                errors_used = row["attempt"] - row["deferrals"]
                if errors_used >= max_attempts:
                    outcome, found = "state = 'failed', finished_at = ?", failed
                else:
                    outcome, found = "state = 'queued', not_before = ?", requeued
                db.execute(
                    f"UPDATE jobs SET {outcome}, updated_at = ?, last_error = ?,"
                    " owner = NULL, lease_until = NULL WHERE id = ?",
                    (now, now, f"WorkerLost: worker {owner} died", row["id"]),
                )
                found.append(self._record(row))
        return requeued, failed

    def next_ready_at(self) -> float | None:
        """Earliest ``not_before`` among queued jobs (for how long a pool may sleep)."""
        row = (
            self._conn()
            .execute("SELECT MIN(not_before) FROM jobs WHERE state = 'queued'")
            .fetchone()
        )
        return None if row[0] is None else float(row[0])
