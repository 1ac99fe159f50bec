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
* ``P:leased``       set: jobs a token holds (running, or waiting for its retry)
* ``P:lease:<id>``   string: the run holding the job, expiring in seconds unless
  the worker's heartbeat renews it. A job whose lease lapsed was held by a worker
  that died outright: `reclaim` puts it back at the head of its user's line.
* ``P:tokens``       integer: tokens sent and not yet taken by a worker. Jobs in the
  lines beyond it have no token (a bot that died between storing a job and sending
  its token, a job `reclaim` put back): `take_deficit` says how many to send.
* ``P:last_claim``   server time of the last `claim`; ``P:stalled``: the stall check
  recounted the tokens and no claim came since

Finished jobs and their checkpoints expire after ``ttl`` seconds.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from totoshka.jobs.fairness import round_robin_position
from totoshka.jobs.queue import JobRecord, JobState, TooManyPending

MARK_RETRY_S = 0.25  # between tries of a checkpoint while Redis is away

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
if redis.call('EXISTS', P .. ':job:' .. id) == 1 then return {'ok', id} end  -- a retried call
if redis.call('EXISTS', P .. ':void:' .. id) == 1 then return {'void', id} end  -- withdrawn
if dedupe ~= '' then
  local existing = redis.call('GET', P .. ':dedupe:' .. dedupe)
  if existing then return {'dup', existing} end
end
local pend = P .. ':pending:' .. user
if maxp >= 0 and redis.call('SCARD', pend) >= maxp then return {'limit', ''} end
redis.call('HSET', P .. ':job:' .. id, 'user_key', user, 'payload', payload,
  'attempt', 0, 'deferrals', 0, 'created_at', now, 'updated_at', now, 'dedupe_key', dedupe,
  'lined_at', redis.call('TIME')[1])
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
if existing then return existing end  -- a redelivered or retried token: its own job
redis.call('SET', P .. ':last_claim', redis.call('TIME')[1])
redis.call('DEL', P .. ':stalled')
if tonumber(redis.call('GET', P .. ':tokens') or '0') > 0 then
  redis.call('DECR', P .. ':tokens')
end
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
local P, id, now, token, run, lease_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local worker = ARGV[7]
local key = P .. ':job:' .. id
local lk = P .. ':lease:' .. id
if redis.call('GET', P .. ':claim:' .. token) ~= id then return {'reclaimed', 0, 0} end
local state = redis.call('HGET', key, 'state')
if state ~= 'queued' and state ~= 'running' then return {state or 'missing', 0, 0} end
local deferrals = tonumber(redis.call('HGET', key, 'deferrals'))
if redis.call('GET', lk) == run then  -- this very call, retried after a lost reply
  return {'running', tonumber(redis.call('HGET', key, 'attempt')), deferrals}
end
transition(P, id, 'running')
local attempt = redis.call('HINCRBY', key, 'attempt', 1)
redis.call('HSET', key, 'started_at', now, 'updated_at', now, 'worker', worker)
redis.call('SET', lk, run, 'PX', lease_ms)
redis.call('SADD', P .. ':leased', id)
return {'running', attempt, deferrals}
"""

_RENEW = """
local lk, run, ms = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', lk) ~= run then return 0 end
redis.call('PEXPIRE', lk, ms)
return 1
"""

_RECLAIM = """
local P, now = ARGV[1], ARGV[2]
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', P .. ':leased')) do
  local key = P .. ':job:' .. id
  local state = redis.call('HGET', key, 'state')
  if state ~= 'queued' and state ~= 'running' then
    redis.call('SREM', P .. ':leased', id)
  elseif redis.call('EXISTS', P .. ':lease:' .. id) == 0 then
    local token = redis.call('HGET', key, 'token')
    if token then redis.call('DEL', P .. ':claim:' .. token) end
    redis.call('HDEL', key, 'token')
    transition(P, id, 'queued')
    redis.call('HSET', key, 'updated_at', now, 'lined_at', 0,
      'last_error', 'WorkerLost: the worker running it stopped answering')
    local user = redis.call('HGET', key, 'user_key')
    local uq = P .. ':uq:' .. user
    redis.call('LPUSH', uq, id)
    if redis.call('LLEN', uq) == 1 then
      redis.call('LREM', P .. ':ring', 0, user)
      redis.call('LPUSH', P .. ':ring', user)
    end
    redis.call('SREM', P .. ':leased', id)
    table.insert(out, id)
  end
end
return out
"""

_DEFICIT = """
local P, grace = ARGV[1], tonumber(ARGV[2])
local now = tonumber(redis.call('TIME')[1])
local lined, old = 0, 0
for _, user in ipairs(redis.call('LRANGE', P .. ':ring', 0, -1)) do
  for _, id in ipairs(redis.call('LRANGE', P .. ':uq:' .. user, 0, -1)) do
    lined = lined + 1
    local at = tonumber(redis.call('HGET', P .. ':job:' .. id, 'lined_at') or '0')
    if at <= now - grace then old = old + 1 end
  end
end
local tk = P .. ':tokens'
local tokens = tonumber(redis.call('GET', tk) or '0')
local last = tonumber(redis.call('GET', P .. ':last_claim') or '0')
if old > 0 and last <= now - grace and redis.call('SCARD', P .. ':leased') == 0
    and redis.call('EXISTS', P .. ':stalled') == 0 then
  -- Old jobs wait, no worker took a token for a while and none holds a job: the
  -- tokens counted may be gone (a broker that lost its messages). Count afresh,
  -- once until a worker claims again (no workers at all: more tokens would not
  -- help), or after ten graces if none does.
  tokens = 0
  redis.call('SET', P .. ':stalled', 1, 'EX', math.ceil(grace * 10))
end
local need = old - tokens
if need <= 0 then return 0 end
redis.call('SET', tk, tokens + need)
redis.call('SET', P .. ':last_claim', now)  -- give the tokens sent now a grace
return need
"""

_FINISH = """
local P, id, new, now, err, deferral, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5],
  tonumber(ARGV[6]), ARGV[7]
local hold_ms = tonumber(ARGV[8])
local key = P .. ':job:' .. id
local state = redis.call('HGET', key, 'state')
if state ~= 'running' then return 0 end
if new == 'queued' then  -- waiting for its retry: the lease covers the countdown
  redis.call('PEXPIRE', P .. ':lease:' .. id, hold_ms)
else
  redis.call('DEL', P .. ':lease:' .. id)
  redis.call('SREM', P .. ':leased', id)
end
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


def healing_client(url: str) -> redis.Redis:
    """A client whose pooled connections survive a Redis restart.

    Health checks ping a connection that sat idle before using it, so one broken
    by a restart is replaced instead of failing the next command; a dropped or
    refused connection is retried with backoff for about two seconds. Every script here
    is safe to run twice (a retried submit finds its job, a retried start its run),
    which is what makes the retry safe. Timeouts bound a frozen server."""
    # Only dropped connections are retried: a timeout (a frozen server) is refused at
    # once, so that a submit is answered within seconds either way.
    retry = Retry(
        ExponentialBackoff(cap=1.0, base=0.1), retries=4, supported_errors=(redis.ConnectionError,)
    )
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        health_check_interval=10,
        socket_timeout=5,
        socket_connect_timeout=5,
        retry=retry,
    )


_WITHDRAW = """
local P, id, now, ttl, why = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
redis.call('SET', P .. ':void:' .. id, 1, 'EX', 86400)  -- a submit still on its way: refused
local key = P .. ':job:' .. id
if redis.call('HGET', key, 'state') ~= 'queued' then return 0 end
local user = redis.call('HGET', key, 'user_key')
transition(P, id, 'cancelled')
redis.call('HSET', key, 'finished_at', now, 'updated_at', now, 'last_error', why)
redis.call('SREM', P .. ':pending:' .. user, id)
local uq = P .. ':uq:' .. user
redis.call('LREM', uq, 0, id)
if redis.call('LLEN', uq) == 0 then redis.call('LREM', P .. ':ring', 0, user) end
redis.call('EXPIRE', key, ttl)
return 1
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
        self._renew = client.register_script(_RENEW)
        self._reclaim = client.register_script(_TRANSITION + _RECLAIM)
        self._deficit = client.register_script(_DEFICIT)
        self._finish = client.register_script(_TRANSITION + _FINISH)
        self._cancel = client.register_script(_TRANSITION + _CANCEL)
        self._withdraw = client.register_script(_TRANSITION + _WITHDRAW)

    @classmethod
    def from_url(cls, url: str, prefix: str = "totoshka:jobs") -> RedisJobStore:
        return cls(healing_client(url), prefix)

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
        job_id: str | None = None,
    ) -> tuple[str, bool]:
        """Store a queued job; return ``(job_id, duplicate)`` or raise `TooManyPending`.

        The caller may choose the id, so that it can withdraw a job whose submit
        timed out without knowing whether the server ran it."""
        job_id = job_id or uuid.uuid4().hex
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
        if status == "void":
            raise redis.ConnectionError("this submit was withdrawn after it timed out")
        return jid, status == "dup"

    def cancel_user(self, user_key: str) -> list[str]:
        ids = self._cancel(args=[self.prefix, user_key, repr(time.time()), self.ttl, ""])
        return sorted(ids, key=lambda j: float(self.r.hget(self._k("job", j), "created_at") or 0))

    def cancel_job(self, job_id: str, error: str) -> None:
        """Withdraw one submitted job (its token could not be sent, or its submit
        timed out): cancelled if it is queued, and refused if its submit has not
        reached the server yet, whichever order the two arrive in."""
        self._withdraw(args=[self.prefix, job_id, repr(time.time()), self.ttl, error[:2000]])

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

    def mark(self, job_id: str, key: str, value: Any, patience: float = 0.0) -> None:
        """Store a checkpoint, waiting out a Redis outage for up to `patience` seconds.

        A checkpoint records a side effect that has already happened (a photo sent):
        lost to a restart that outlasts the client's own retries (≈ 1.5 s), the job
        runs again and sends it twice (seen in CI: one job of nine, Redis restarted
        mid-run). HSET of the same value is idempotent, so a timeout is retried too.
        Workers pass their lease: past it the job may be handed on anyway."""
        deadline = time.monotonic() + patience
        while True:
            try:
                self.r.hset(self._k("cp", job_id), key, json.dumps(value, ensure_ascii=False))
                return
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(MARK_RETRY_S)

    def job_state(self, job_id: str) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.r.hgetall(self._k("cp", job_id)).items()}

    # -- worker side --------------------------------------------------------------

    def claim(self, token: str) -> str | None:
        """The job this token runs: the one it took before, or the next in fair order."""
        jid = self._claim(args=[self.prefix, token, self.claim_ttl])
        return jid or None

    def start(
        self, job_id: str, token: str, run: str, lease: float, worker: str = ""
    ) -> tuple[str, int, int]:
        """Mark running, count the attempt and take the lease: ``(state, attempt, deferrals)``.

        ``run`` names this run of the token (a redelivered token is a new run);
        ``worker`` (the Celery node) is kept in the record for the operator. A state
        other than ``running`` (cancelled, done, missing, or ``reclaimed``: the token
        lost its job to `reclaim`) means: skip.
        """
        state, attempt, deferrals = self._start(
            args=[self.prefix, job_id, repr(time.time()), token, run, int(lease * 1000), worker]
        )
        return state, int(attempt), int(deferrals)

    def renew(self, job_id: str, run: str, lease: float) -> bool:
        """The heartbeat: extend the run's lease; False when the run no longer holds it."""
        return bool(self._renew(args=[self._k("lease", job_id), run, int(lease * 1000)]))

    # -- repairs (any process may run them, as often as it likes: each is atomic) --

    def reclaim(self) -> list[str]:
        """Put back in line every held job whose lease lapsed (its worker died)."""
        return list(self._reclaim(args=[self.prefix, repr(time.time())]))

    def take_deficit(self, grace: float) -> int:
        """How many tokens to send now for jobs that waited `grace` seconds without
        one; counted as sent (give back with `tokens_sent(-n)` what could not go)."""
        return int(self._deficit(args=[self.prefix, grace]))

    def tokens_sent(self, n: int) -> None:
        self.r.incrby(self._k("tokens"), n)

    def finish(
        self,
        job_id: str,
        state: JobState,
        error: BaseException | str | None = None,
        *,
        deferral: bool = False,
        hold: float = 0.0,
    ) -> bool:
        """Move a running job to ``state`` (``queued`` = waiting for a retry, with
        its lease held for ``hold`` seconds: the countdown and then some)."""
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
                int(hold * 1000),
            ]
        )
        return bool(done)

    def release_token(self, token: str) -> None:
        """Forget a token's claim (the token is done with its job)."""
        self.r.delete(self._k("claim", token))
