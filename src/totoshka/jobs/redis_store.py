"""Job records, fair lines and checkpoints in Redis, shared by the bot and Celery workers.

Celery moves *tokens*, not jobs. Every submit stores the job here and sends one
argument-less task; whichever worker runs a token asks this store for the next job
in fair order (`claim`). So fairness is decided when work starts, not when it was
sent, and one user's ten photos cannot fill the broker ahead of everyone else.

Keys (``P`` is the configured prefix; every change is one Lua script, so atomic):

* ``P:job:<id>``     hash: user_key, payload (JSON), state, attempt, deferrals,
  created_at, updated_at, started_at, finished_at, last_error, dedupe_key, token
* ``P:cp:<id>``      hash: the job's checkpoints (JSON values) — `JobContext.checkpoint`
* ``P:uq:<user>``    list: the user's jobs waiting in line, oldest first
* ``P:ring``         list: users whose line is not empty, in serving order; `claim`
  pops the head user, takes their oldest job and puts them back at the tail
* ``P:pending:<user>`` set: the user's queued + running jobs (the per-user limit)
* ``P:dedupe:<key>`` string: job id for a dedupe key (expires)
* ``P:claim:<token>`` string: job id a token task took. A redelivered token (worker
  lost) or a retried one (``Task.retry`` keeps the task id) resumes *that* job.
* ``P:stats``        hash: job count per state

Finished jobs and their checkpoints expire after ``ttl`` seconds.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import redis

from totoshka.jobs.fairness import round_robin_position
from totoshka.jobs.queue import JobRecord, JobState, TooManyPending

_TRANSITION = """
local function transition(P, id, new)
  local key = P .. ':job:' .. id
  local old = redis.call('HGET', key, 'state')
  if old == new then return old end
  if old then redis.call('HINCRBY', P .. ':stats', old, -1) end
  redis.call('HSET', key, 'state', new)
  redis.call('HINCRBY', P .. ':stats', new, 1)
  return old
end
"""

_SUBMIT = """
local P, id, user, payload, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local maxp, dedupe, dedupe_ttl = tonumber(ARGV[6]), ARGV[7], ARGV[8]
if dedupe ~= '' then
  local existing = redis.call('GET', P .. ':dedupe:' .. dedupe)
  if existing then return {'dup', existing} end
end
local pend = P .. ':pending:' .. user
if maxp >= 0 and redis.call('SCARD', pend) >= maxp then return {'limit', ''} end
redis.call('HSET', P .. ':job:' .. id, 'user_key', user, 'payload', payload,
  'attempt', 0, 'deferrals', 0, 'created_at', now, 'updated_at', now, 'dedupe_key', dedupe)
transition(P, id, 'queued')
redis.call('SADD', pend, id)
if redis.call('RPUSH', P .. ':uq:' .. user, id) == 1 then
  redis.call('RPUSH', P .. ':ring', user)
end
if dedupe ~= '' then redis.call('SET', P .. ':dedupe:' .. dedupe, id, 'EX', dedupe_ttl) end
return {'ok', id}
"""

_CLAIM = """
local P, token, claim_ttl = ARGV[1], ARGV[2], ARGV[3]
local ck = P .. ':claim:' .. token
local existing = redis.call('GET', ck)
if existing then return existing end
while true do
  local user = redis.call('LPOP', P .. ':ring')
  if not user then return false end
  local uq = P .. ':uq:' .. user
  local id = redis.call('LPOP', uq)
  if redis.call('LLEN', uq) > 0 then redis.call('RPUSH', P .. ':ring', user) end
  if id then
    redis.call('SET', ck, id, 'EX', claim_ttl)
    redis.call('HSET', P .. ':job:' .. id, 'token', token)
    return id
  end
end
"""

_START = """
local P, id, now = ARGV[1], ARGV[2], ARGV[3]
local key = P .. ':job:' .. id
local state = redis.call('HGET', key, 'state')
if state ~= 'queued' and state ~= 'running' then return {state or 'missing', 0, 0} end
transition(P, id, 'running')
local attempt = redis.call('HINCRBY', key, 'attempt', 1)
redis.call('HSET', key, 'started_at', now, 'updated_at', now)
return {'running', attempt, tonumber(redis.call('HGET', key, 'deferrals'))}
"""

_FINISH = """
local P, id, new, now, err, deferral, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5],
  tonumber(ARGV[6]), ARGV[7]
local key = P .. ':job:' .. id
local state = redis.call('HGET', key, 'state')
if state ~= 'running' then return 0 end
transition(P, id, new)
redis.call('HSET', key, 'updated_at', now)
if err ~= '' then redis.call('HSET', key, 'last_error', err) end
if deferral > 0 then redis.call('HINCRBY', key, 'deferrals', deferral) end
if new ~= 'queued' then
  local user = redis.call('HGET', key, 'user_key')
  redis.call('SREM', P .. ':pending:' .. user, id)
  redis.call('HSET', key, 'finished_at', now)
  local token = redis.call('HGET', key, 'token')
  if token then redis.call('DEL', P .. ':claim:' .. token) end
  redis.call('EXPIRE', key, ttl)
  redis.call('EXPIRE', P .. ':cp:' .. id, ttl)
end
return 1
"""

_CANCEL = """
local P, user, now, ttl, ids_only = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local pend = P .. ':pending:' .. user
local uq = P .. ':uq:' .. user
local out = {}
local candidates
if ids_only == '' then candidates = redis.call('SMEMBERS', pend)
else candidates = cjson.decode(ids_only) end
for _, id in ipairs(candidates) do
  local key = P .. ':job:' .. id
  if redis.call('HGET', key, 'state') == 'queued' then
    transition(P, id, 'cancelled')
    redis.call('HSET', key, 'finished_at', now, 'updated_at', now)
    redis.call('SREM', pend, id)
    redis.call('LREM', uq, 0, id)
    redis.call('EXPIRE', key, ttl)
    table.insert(out, id)
  end
end
if redis.call('LLEN', uq) == 0 then redis.call('LREM', P .. ':ring', 0, user) end
return out
"""


class RedisJobStore:
    """Atomic job bookkeeping in Redis for Celery mode (bot side and worker side)."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "totoshka:jobs",
        *,
        ttl: int = 7 * 24 * 3600,
        claim_ttl: int = 7 * 24 * 3600,
    ) -> None:
        self.r = client
        self.prefix = prefix
        self.ttl = ttl
        self.claim_ttl = claim_ttl
        self._submit = client.register_script(_TRANSITION + _SUBMIT)
        self._claim = client.register_script(_CLAIM)
        self._start = client.register_script(_TRANSITION + _START)
        self._finish = client.register_script(_TRANSITION + _FINISH)
        self._cancel = client.register_script(_TRANSITION + _CANCEL)

    @classmethod
    def from_url(cls, url: str, prefix: str = "totoshka:jobs") -> RedisJobStore:
        return cls(redis.Redis.from_url(url, decode_responses=True), prefix)

    def persistence_warning(self) -> str | None:
        """Why a Redis restart would lose queued jobs, or None when it would not (or
        cannot be told: managed services often refuse CONFIG).

        Jobs live only here between the bot and a worker. With neither the
        append-only file nor RDB snapshots a restart empties the store and every
        queued photo is gone; with snapshots alone, the jobs of the last minutes are."""
        try:
            aof = self.r.config_get("appendonly").get("appendonly", "")
            save = self.r.config_get("save").get("save", "")
        except redis.ResponseError:
            return None
        if aof == "yes":
            return None
        where = self.r.connection_pool.connection_kwargs.get("host", "?")
        if save:
            return (
                f"Redis at {where} keeps jobs in RDB snapshots only (appendonly no): a restart "
                "loses the jobs queued since the last one; set appendonly yes (README: "
                "'Deploying at scale')"
            )
        return (
            f"Redis at {where} has no persistence (appendonly no, no snapshots): a restart "
            "loses every queued job; set appendonly yes (README: 'Deploying at scale')"
        )

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # -- bot side -----------------------------------------------------------------

    def submit(
        self,
        user_key: str,
        payload: dict[str, Any],
        *,
        max_pending: int | None = None,
        dedupe_key: str | None = None,
    ) -> tuple[str, bool]:
        """Store a queued job; return ``(job_id, duplicate)`` or raise `TooManyPending`."""
        job_id = uuid.uuid4().hex
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        status, jid = self._submit(
            args=[
                self.prefix,
                job_id,
                user_key,
                text,
                repr(time.time()),
                -1 if max_pending is None else max_pending,
                dedupe_key or "",
                self.ttl,
            ]
        )
        if status == "limit":
            assert max_pending is not None
            raise TooManyPending(max_pending)
        return jid, status == "dup"

    def cancel_user(self, user_key: str) -> list[str]:
        ids = self._cancel(args=[self.prefix, user_key, repr(time.time()), self.ttl, ""])
        return sorted(ids, key=lambda j: float(self.r.hget(self._k("job", j), "created_at") or 0))

    def cancel_job(self, job_id: str, error: str) -> None:
        """Withdraw one queued job (its token could not be sent)."""
        user = self.r.hget(self._k("job", job_id), "user_key")
        if user is not None:
            self._cancel(
                args=[self.prefix, user, repr(time.time()), self.ttl, json.dumps([job_id])]
            )
            self.r.hset(self._k("job", job_id), "last_error", error[:2000])

    def position(self, job_id: str) -> int | None:
        """Approximate place in line (see `CeleryJobQueue.position`)."""
        state, user = self.r.hmget(self._k("job", job_id), ["state", "user_key"])
        if state != JobState.QUEUED.value or user is None:
            return None
        ring: list[str] = self.r.lrange(self._k("ring"), 0, -1)
        index = self.r.lpos(self._k("uq", user), job_id)
        if index is None or user not in ring:
            return 1  # waiting for its retry countdown on a worker: runs as soon as it ends
        lengths, mine = self._lengths(ring), ring.index(user)
        # The reads are separate round trips: a worker may claim jobs between them.
        if lengths[mine] == 0:
            return 1  # claimed meanwhile: it is starting
        return round_robin_position(lengths, mine, min(int(index), lengths[mine] - 1))

    def _lengths(self, users: list[str]) -> list[int]:
        """The length of each user's line, in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for u in users:
            pipe.llen(self._k("uq", u))
        return [int(n) for n in pipe.execute()]

    def pending_count(self, user_key: str) -> int:
        return int(self.r.scard(self._k("pending", user_key)))

    def stats(self) -> dict[str, int]:
        """Jobs per state; counts of finished states are cumulative (records expire)."""
        raw = self.r.hgetall(self._k("stats"))
        return {s.value: max(0, int(raw.get(s.value, 0))) for s in JobState}

    def get(self, job_id: str) -> JobRecord | None:
        h = self.r.hgetall(self._k("job", job_id))
        if not h or "state" not in h:
            return None

        def f(name: str) -> float | None:
            return float(h[name]) if h.get(name) else None

        return JobRecord(
            job_id=job_id,
            user_key=h["user_key"],
            payload=json.loads(h["payload"]),
            state=JobState(h["state"]),
            attempt=int(h.get("attempt", 0)),
            deferrals=int(h.get("deferrals", 0)),
            created_at=f("created_at") or 0.0,
            updated_at=f("updated_at") or 0.0,
            not_before=f("created_at") or 0.0,
            started_at=f("started_at"),
            finished_at=f("finished_at"),
            last_error=h.get("last_error"),
            dedupe_key=h.get("dedupe_key") or None,
            checkpoints=self.job_state(job_id),
        )

    def running(self) -> list[JobRecord]:
        """The running jobs, longest-running first (`totoshka jobs status`).

        No index holds them, so this scans the prefix's job keys: an operator's
        look, not a hot path. A record that expires mid-scan is skipped."""
        literal = self.prefix.translate({ord(c): f"\\{c}" for c in "*?[]\\"})
        pattern = f"{literal}:job:*"  # a glob character in the prefix matches only itself
        jobs = []
        for key in self.r.scan_iter(match=pattern, count=500):
            if self.r.hget(key, "state") == JobState.RUNNING.value:
                record = self.get(key.rpartition(":")[2])
                if record is not None and record.state is JobState.RUNNING:
                    jobs.append(record)
        return sorted(jobs, key=lambda j: j.started_at or 0.0)

    # -- checkpoints --------------------------------------------------------------

    def mark(self, job_id: str, key: str, value: Any) -> None:
        self.r.hset(self._k("cp", job_id), key, json.dumps(value, ensure_ascii=False))

    def job_state(self, job_id: str) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.r.hgetall(self._k("cp", job_id)).items()}

    # -- worker side --------------------------------------------------------------

    def claim(self, token: str) -> str | None:
        """The job this token runs: the one it took before, or the next in fair order."""
        jid = self._claim(args=[self.prefix, token, self.claim_ttl])
        return jid or None

    def start(self, job_id: str) -> tuple[str, int, int]:
        """Mark running and count the attempt: ``(state, attempt, deferrals)``.

        A state other than ``running`` (cancelled, done, missing...) means: skip.
        """
        state, attempt, deferrals = self._start(args=[self.prefix, job_id, repr(time.time())])
        return state, int(attempt), int(deferrals)

    def finish(
        self,
        job_id: str,
        state: JobState,
        error: BaseException | str | None = None,
        *,
        deferral: bool = False,
    ) -> bool:
        """Move a running job to ``state`` (``queued`` = waiting for a retry)."""
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        done = self._finish(
            args=[
                self.prefix,
                job_id,
                state.value,
                repr(time.time()),
                (error or "")[:2000],
                1 if deferral else 0,
                self.ttl,
            ]
        )
        return bool(done)

    def release_token(self, token: str) -> None:
        """Forget a token's claim (the token is done with its job)."""
        self.r.delete(self._k("claim", token))
