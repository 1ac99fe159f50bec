"""Fault injection and the call log: how tests make Telegram misbehave and check the bot.

A :class:`FaultRule` targets one Bot API method (or ``"*"``) and fires for the next
``count`` calls, or with a ``probability`` drawn from its own seeded RNG so a flaky
run can be replayed. A fault may answer an error (429 with ``retry_after``, 500,
502, ...), hold the call back for ``delay`` seconds first, or both. With
``executed=True`` the call takes effect *before* the error is answered – the
"Telegram sent it but the response was lost" case that exactly-once logic must
survive. The :class:`CallLog` records every call with its outcome so a test can
count, e.g., how many ``sendPhoto`` calls really delivered a photo.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from totoshka.emulator.errors import BotApiError, too_many_requests

_DEFAULT_DESCRIPTIONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    400: "Bad Request",
    403: "Forbidden: bot was blocked by the user",
    409: "Conflict",
}


@dataclass(slots=True)
class FaultRule:
    """One injected misbehaviour; ``status=None`` with a ``delay`` only slows calls down."""

    id: int
    method: str  # Bot API method name, case-insensitive, or "*" for every method
    status: int | None = 429
    retry_after: int = 1
    count: int | None = 1  # calls left to affect; None = unlimited (use with probability)
    probability: float | None = None
    seed: int | None = None
    delay: float = 0.0
    description: str | None = None
    executed: bool = False
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def matches(self, method: str) -> bool:
        return self.method == "*" or self.method.lower() == method.lower()

    def exhausted(self) -> bool:
        return self.count is not None and self.count <= 0

    def error(self) -> BotApiError | None:
        if self.status is None:
            return None
        if self.status == 429:
            return too_many_requests(self.retry_after)
        text = self.description or _DEFAULT_DESCRIPTIONS.get(self.status, "Error")
        return BotApiError(self.status, text)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_rng", None)
        return data


@dataclass(frozen=True, slots=True)
class Fault:
    """What the fault machinery decided for one call."""

    rule_id: int
    delay: float
    error: BotApiError | None
    executed: bool


class FaultInjector:
    """The rules of one server; consulted once per Bot API call, in order of creation."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(self, method: str, **options: Any) -> FaultRule:
        rule = FaultRule(id=next(self._ids), method=method, **options)
        if rule.probability is not None and not 0.0 <= rule.probability <= 1.0:
            raise ValueError("probability must be within 0..1")
        if rule.count is not None and rule.count < 1:
            raise ValueError("count must be positive")
        self._rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        before = len(self._rules)
        self._rules = [rule for rule in self._rules if rule.id != rule_id]
        return len(self._rules) != before

    def clear(self) -> None:
        self._rules.clear()

    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    def take(self, method: str) -> Fault | None:
        """Pick the first live rule for ``method`` and consume one of its uses."""
        for rule in self._rules:
            if not rule.matches(method) or rule.exhausted():
                continue
            if rule.probability is not None and rule._rng.random() >= rule.probability:
                continue
            if rule.count is not None:
                rule.count -= 1
            rule.fired += 1
            return Fault(rule.id, rule.delay, rule.error(), rule.executed)
        return None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One Bot API call as the bot saw it."""

    seq: int
    method: str
    started_at: float  # unix time
    duration: float
    status: int  # HTTP status answered
    ok: bool
    description: str | None
    fault_id: int | None  # the rule that shaped the answer, if any
    executed: bool  # whether the call took effect (True for ok calls)
    chat_id: int | str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class CallLog:
    """Append-only record of Bot API calls, capped so a long-running server stays small."""

    def __init__(self, max_records: int = 50_000) -> None:
        self._records: list[CallRecord] = []
        self._seq = itertools.count(1)
        self._max = max_records

    def start(self) -> tuple[int, float, float]:
        """Reserve a sequence number; returns (seq, wall time, monotonic time)."""
        return next(self._seq), time.time(), time.monotonic()

    def add(self, record: CallRecord) -> None:
        self._records.append(record)
        if len(self._records) > self._max:
            del self._records[: len(self._records) - self._max]

    def records(self, method: str | None = None, since: int = 0) -> list[CallRecord]:
        return [
            r
            for r in self._records
            if r.seq > since and (method is None or r.method.lower() == method.lower())
        ]

    def clear(self) -> None:
        self._records.clear()
