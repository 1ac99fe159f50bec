"""The operator's HTTP endpoints: ``/metrics``, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process's event loop runs: a liveness probe
restarts a process that hangs, not one whose broker is down. ``/readyz`` asks
what serving needs (the models warmed up, the queues and the state storage
answering) and answers 503 with the reasons, in a few words each, when any is
missing. Neither says more than that: no URLs (a broker URL may carry a
password), no settings, no token.

The same routes go onto the webhook server in webhook mode, or onto a small
server of their own (`serve`, on ``TOTOSHKA_METRICS_PORT``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from totoshka.observability import CONTENT_TYPE, Metrics

#: ``await readiness()`` -> (reasons it is not ready, notes); no reasons = ready.
Readiness = Callable[[], Awaitable[tuple[list[str], list[str]]]]

PATHS = ("/metrics", "/healthz", "/readyz")


def add_routes(app: web.Application, metrics: Metrics, readiness: Readiness) -> None:
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


async def serve(host: str, port: int, metrics: Metrics, readiness: Readiness) -> web.AppRunner:
    """The endpoints on a server of their own; ``await runner.cleanup()`` stops it."""
    app = web.Application()
    add_routes(app, metrics, readiness)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
