"""The job store tells the operator when a Redis restart would lose queued jobs.

Against the real Redis on 127.0.0.1: its persistence settings are switched for the
test and put back as they were.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from totoshka.jobs.redis_store import RedisJobStore

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def store() -> Iterator[RedisJobStore]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_connect_timeout=5)
    client.ping()  # loud if Redis is down
    before = {key: client.config_get(key)[key] for key in ("appendonly", "save")}
    try:
        yield RedisJobStore(client, f"totoshka-test:{uuid.uuid4().hex[:8]}:jobs")
    finally:
        for key, value in before.items():
            client.config_set(key, value)


def test_no_persistence_is_named(store: RedisJobStore) -> None:
    store.r.config_set("appendonly", "no")
    store.r.config_set("save", "")
    warning = store.persistence_warning()
    assert warning is not None and "no persistence" in warning and "appendonly yes" in warning


def test_snapshots_alone_lose_the_latest_jobs(store: RedisJobStore) -> None:
    store.r.config_set("appendonly", "no")
    store.r.config_set("save", "3600 1")
    warning = store.persistence_warning()
    assert warning is not None and "RDB snapshots only" in warning


def test_the_append_only_file_is_enough(store: RedisJobStore) -> None:
    store.r.config_set("appendonly", "yes")
    assert store.persistence_warning() is None
