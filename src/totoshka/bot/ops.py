"""The operator's HTTP endpoints: ``/metrics``, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process's event loop runs: a liveness probe
restarts a process that hangs, not one whose broker is down. ``/readyz`` asks
what serving needs (the models warmed up, the queues and the state storage
answering) and answers 503 with the reasons, in a few words each, when any is
missing. Neither says more than that: no URLs (a broker URL may carry a
password), no settings, no token.

The same routes go onto the webhook server in webhook mode, or onto a small
server of their own (`serve`, on ``TOTOSHKA_METRICS_PORT``).

A Celery worker (``totoshka worker``) serves them too, from its main process
(`WorkerEndpoints`): /metrics is the sum of its pool children's figures
(`PoolMetrics`, prometheus_client's multiprocess mode), /readyz asks its job store
and broker and whether Celery consumes yet. `worker_logging` is that process's log
set-up; both are here, not in the CLI, because the CLI must not import
prometheus_client (through `logs`) before it has chosen the multiprocess folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from totoshka.bot.logs import install_redaction, setup_logging
from totoshka.observability import CONTENT_TYPE, Exposition, Metrics, PoolMetrics

log = logging.getLogger(__name__)

#: ``await readiness()`` -> (reasons it is not ready, notes); no reasons = ready.
Readiness = Callable[[], Awaitable[tuple[list[str], list[str]]]]

PATHS = ("/metrics", "/healthz", "/readyz")
#: Seconds a worker's /readyz waits for its job store and broker.
READY_TIMEOUT = 5.0


def add_routes(app: web.Application, metrics: Exposition, readiness: Readiness) -> None:
    async def metrics_view(request: web.Request) -> web.Response:
        body = await asyncio.to_thread(metrics.render)  # reads the queues: off the loop
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        reasons, notes = await readiness()
        body: dict[str, Any] = {"status": "not ready" if reasons else "ready"}
        if reasons:
            body["reasons"] = reasons
        if notes:
            body["notes"] = notes
        return web.json_response(body, status=503 if reasons else 200)

    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


async def serve(host: str, port: int, metrics: Exposition, readiness: Readiness) -> web.AppRunner:
    """The endpoints on a server of their own; ``await runner.cleanup()`` stops it."""
    app = web.Application()
    add_routes(app, metrics, readiness)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def worker_logging(level: str, fmt: str, token: str) -> None:
    """A worker's logs. JSON (``fmt == "json"``): one object a line on stderr, set up
    before Celery starts, which then leaves configured loggers alone
    (``worker_hijack_root_logger`` is off) and sends what its pool prints through the
    root logger too. Two of its loggers do not propagate, so they get the JSON handler
    themselves, else Celery gives them text ones: its pool's (``multiprocessing``:
    "Process ... exited with signal 9") and its task loggers' (``celery.task``).
    Text: Celery's own lines, as always. The token is redacted either way, in the pool
    children too (they fork from this process with its record factory)."""
    if fmt != "json":
        install_redaction(token)
        return
    handler = setup_logging(level, token, fmt="json")
    for name in _UNPROPAGATED:
        logging.getLogger(name).addHandler(handler)


#: Celery's loggers that do not propagate to the root (billiard's and the tasks').
_UNPROPAGATED = ("multiprocessing", "celery.task")


class WorkerEndpoints:
    """/metrics, /healthz and /readyz of a Celery worker, served from its main process.

    On a thread with an event loop of its own: Celery's main process runs kombu's
    hub, not asyncio, and must not wait on a scrape. Pool children fork from this
    process and would inherit the listening socket, holding the port after the main
    process died: each child closes its copy as it starts (``worker_process_init``).

    /readyz: ``ping`` (`CeleryJobQueue.ping`: the job store and the broker answer)
    and Celery consuming (``worker_ready`` to ``worker_shutdown``). /healthz: this
    process's loop answers.
    """

    def __init__(
        self,
        host: str,
        port: int,
        metrics_dir: str | Path,
        ping: Callable[[], None],
        lanes: tuple[str, ...] = (),
    ) -> None:
        self.host, self.port = host, port
        self.metrics = PoolMetrics(metrics_dir)
        # the lanes' job figures at zero from the first scrape, before any child ran a
        # job (a rate needs them): files of this process, which stays up
        zeros = Metrics()
        for lane in lanes:
            zeros.lane(lane)
        self.ping = ping
        self.consuming = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    async def readiness(self) -> tuple[list[str], list[str]]:
        reasons: list[str] = []
        if not self.consuming.is_set():
            reasons.append("worker: not consuming yet")
        try:
            await asyncio.wait_for(asyncio.to_thread(self.ping), READY_TIMEOUT)
        except Exception as exc:  # QueueUnavailable names the part; anything else its type
            reasons.append(str(exc) if str(exc) else f"queue: {type(exc).__name__}")
        return reasons, []

    def start(self) -> None:
        """Listen (an ``OSError`` here: the port is taken), serve, watch the pool."""
        sock = self._sock = socket.create_server((self.host, self.port))  # raises here
        started = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                app = web.Application()
                add_routes(app, self.metrics, self.readiness)
                runner = web.AppRunner(app, handle_signals=False, access_log=None)
                loop.run_until_complete(runner.setup())
                loop.run_until_complete(web.SockSite(runner, sock).start())
            except BaseException as exc:
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=main, name="totoshka-ops", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            sock.close()
            raise failure[0]
        self._watch_pool()
        log.info("worker metrics on http://%s:%s/metrics", self.host, self.port)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)

    def _watch_pool(self) -> None:
        """Celery's signals; connected before the pool forks, so children have them."""
        from celery.signals import (  # celery: scale-out only
            worker_process_init,
            worker_process_shutdown,
            worker_ready,
            worker_shutdown,
        )

        def child_started(**_: Any) -> None:
            if self._sock is not None:  # the child's copy only: the parent still listens
                with contextlib.suppress(OSError):
                    self._sock.close()

        def child_exiting(pid: int | None = None, **_: Any) -> None:
            # in the child, as it exits; a child killed outright is swept at a scrape
            self.metrics.process_exited(pid or os.getpid())

        worker_process_init.connect(child_started, weak=False)
        worker_process_shutdown.connect(child_exiting, weak=False)
        worker_ready.connect(lambda **_: self.consuming.set(), weak=False)
        worker_shutdown.connect(lambda **_: self.consuming.clear(), weak=False)
