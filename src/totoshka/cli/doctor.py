"""`totoshka doctor`: one screen that tells an operator what serves and what is wrong.

What it shows, and why each part is there:

- the software and the hardware (Python, torch, OpenVINO, CPU model and flags,
  GPU): which fast path a machine *should* get depends on them;
- per model family, the runner that serves a 1280×960 picture, measured here
  (ms, dB against eager fp32), and every path it passed over with the reason and
  the fix ("install packaging"): a fast path that silently falls back was the
  README install's defect, found only by timing it;
- which models are in the cache and which are missing;
- whether the Bot API (with a token), Redis and the broker (when configured) answer;
- the effective settings, token redacted.

`--json` prints the same as one JSON object (the CI smoke test reads it);
`--recalibrate` forgets the cached calibration verdicts first, so every path is
measured again.
"""

from __future__ import annotations

import json
import platform
import socket
import sys
from dataclasses import asdict
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from pydantic import ValidationError

from totoshka import __version__
from totoshka.cli.common import console
from totoshka.cli.run import settings_problem
from totoshka.config import InspectSettings
from totoshka.engine.backends import expected_path
from totoshka.engine.backends.hardware import cpu_info, cuda_available, openvino_available
from totoshka.engine.backends.verdicts import package_version
from totoshka.engine.errors import EngineError
from totoshka.engine.factory import Engine, open_engine

CONNECT_TIMEOUT_S = 5.0


def _settings() -> InspectSettings:
    try:
        return InspectSettings()
    except ValidationError as exc:
        raise EngineError(settings_problem(exc)) from None


# -- services ------------------------------------------------------------------------


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "<token>") if secret else text


def check_bot_api(api_url: str, token: str) -> dict[str, Any]:
    """getMe against the configured Bot API; the token never appears in the answer."""
    import asyncio

    import aiohttp

    async def call() -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=CONNECT_TIMEOUT_S)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{api_url}/bot{token}/getMe") as response,
        ):
            body = await response.json(content_type=None)
        if isinstance(body, dict) and body.get("ok"):
            user = body.get("result") or {}
            return {"ok": True, "detail": f"@{user.get('username', '?')} (id {user.get('id')})"}
        description = body.get("description") if isinstance(body, dict) else None
        return {"ok": False, "detail": f"HTTP {response.status}: {description or body}"}

    try:
        result = asyncio.run(call())
    except Exception as exc:
        result = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    result["detail"] = _redact(str(result["detail"]), token)[:200]
    return result


def _connect(url: str, default_port: int) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection(
        (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=CONNECT_TIMEOUT_S
    )


def check_redis(url: str) -> dict[str, Any]:
    """PING over a plain socket (the scale-out packages need not be installed)."""
    try:
        with _connect(url, 6379) as sock:
            password = urlsplit(url).password
            if password:
                sock.sendall(f"AUTH {password}\r\n".encode())
                sock.recv(256)
            sock.sendall(b"PING\r\n")
            answer = sock.recv(256).decode(errors="replace").strip()
    except OSError as exc:
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    if answer.startswith("+PONG"):
        return {"ok": True, "detail": "PONG"}
    return {"ok": False, "detail": f"answered {answer[:80]!r}"}


def check_amqp(url: str) -> dict[str, Any]:
    """An AMQP 0-9-1 protocol header; a broker answers with a Connection.Start frame."""
    try:
        with _connect(url, 5672) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            frame = sock.recv(8)
    except OSError as exc:
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    if frame[:1] == b"\x01":
        return {"ok": True, "detail": "AMQP 0-9-1 broker"}
    return {"ok": False, "detail": f"not an AMQP 0-9-1 broker (answered {frame[:8]!r})"}


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def services(settings: Any) -> dict[str, dict[str, Any]]:
    if settings.bot_token is not None:
        bot_api = check_bot_api(settings.api_url, settings.token())
    else:
        bot_api = {"ok": None, "detail": "no token set: not checked"}
    found: dict[str, dict[str, Any]] = {"bot_api": {"url": settings.api_url, **bot_api}}
    if settings.redis_url:
        found["redis"] = {
            "url": _hide_password(settings.redis_url),
            **check_redis(settings.redis_url),
        }
    if settings.jobs_backend == "celery":
        url = settings.broker_url
        scheme = urlsplit(url).scheme
        check = check_redis if scheme.startswith("redis") else check_amqp
        found["broker"] = {"url": _hide_password(url), **check(url)}
    return found


# -- engine ----------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    torch_version = package_version("torch")
    gpu = None
    if cuda_available():
        import torch

        gpu = torch.cuda.get_device_name(0)
    cpu = cpu_info()
    return {
        "totoshka": __version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "torch": torch_version,
        "openvino": package_version("openvino") if openvino_available() else None,
        "cpu": cpu.model,
        "cores": cpu.cores,
        "cpu_flags": cpu.line().partition("flags: ")[2],
        "gpu": gpu,
    }


def models(engine: Engine) -> list[dict[str, Any]]:
    return [
        {"id": m.id, "family": m.family, "present": engine.store.is_present(m)}
        for m in engine.catalog.models()
    ]


def inference(stylizer: Any, quality: bool) -> dict[str, Any]:
    from totoshka.engine.diagnose import family_reports  # imports torch: it measures

    reports = family_reports(stylizer, quality=quality)
    return {
        "expected": getattr(stylizer.runner, "expected", None) or expected_path(),
        "families": [asdict(r) for r in reports],
    }


def collect(*, recalibrate: bool = False, quality: bool = True) -> dict[str, Any]:
    settings = _settings()
    engine = open_engine(settings)
    stylizer = engine.stylizer()
    cleared = None
    if recalibrate:
        verdicts = getattr(stylizer.runner, "verdicts", None)
        cleared = verdicts.clear() if verdicts is not None else 0
    return {
        "environment": environment(),
        "inference": inference(stylizer, quality),
        "recalibrated": cleared,
        "models": models(engine),
        "services": services(settings),
        "settings": settings.model_dump(mode="json"),
    }


# -- rendering ---------------------------------------------------------------------------


def _mark(ok: bool | None) -> str:
    return {True: "[green]ok[/]", False: "[red]FAIL[/]", None: "[dim]-[/]"}[ok]


def render(report: dict[str, Any]) -> None:
    env = report["environment"]
    console.print(
        f"[bold]Totoshka {env['totoshka']}[/] — Python {env['python']} ({env['executable']})"
    )
    console.print(f"torch {env['torch']}, OpenVINO {env['openvino'] or '[red]not installed[/]'}")
    console.print(f"CPU: {env['cpu']}, {env['cores']} cores, flags: {env['cpu_flags'] or '-'}")
    console.print(f"GPU: {env['gpu'] or 'none'}")
    inf = report["inference"]
    if report.get("recalibrated") is not None:
        console.print(f"recalibrated: {report['recalibrated']} cached verdicts dropped")
    console.print(f"\n[bold]Inference at 1280×960[/] (this machine supports {inf['expected']})")
    if not inf["families"]:
        console.print("  no model in the cache yet: `totoshka models pull`")
    for fam in inf["families"]:
        if fam["error"]:
            console.print(f"  {fam['family']}: [red]cannot run[/] ({fam['error']})", markup=True)
            continue
        quality = f", {fam['psnr_db']} dB vs eager fp32" if fam["psnr_db"] is not None else ""
        eager = f" (eager fp32 {fam['eager_ms']:.0f} ms)" if fam["eager_ms"] is not None else ""
        good = fam["served_by"] == inf["expected"]
        colour = "green" if good else "yellow"
        console.print(
            f"  {fam['family']} ({fam['network']}): [{colour}]{fam['served_by']}[/] "
            f"{fam['ms']:.0f} ms{quality}{eager}"
        )
        for path in fam["paths"]:
            if path["status"] in ("rejected", "unavailable"):
                line = f"    {path['path']} {path['status']}: {path['reason']}"
                console.print(line, markup=False)
                console.print(f"      fix: {path['fix']}", markup=False)
        if fam["warning"]:
            console.print(f"    [yellow]warning:[/] {fam['warning']}", markup=True)
    console.print("\n[bold]Models[/]")
    present = [m["id"] for m in report["models"] if m["present"]]
    missing = [m["id"] for m in report["models"] if not m["present"]]
    console.print(f"  present: {', '.join(present) or 'none'}", markup=False)
    console.print(f"  missing: {', '.join(missing) or 'none'}", markup=False)
    console.print("\n[bold]Services[/]")
    for name, svc in report["services"].items():
        console.print(f"  {name} {svc['url']}: {_mark(svc['ok'])} {svc['detail']}")
    console.print("\n[bold]Settings[/] (environment and .env, TOTOSHKA_*)")
    pairs = [f"{key}={value}" for key, value in report["settings"].items()]
    console.print("  " + ", ".join(pairs), markup=False)


def doctor(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a screen.")
    ] = False,
    recalibrate: Annotated[
        bool,
        typer.Option("--recalibrate", help="Forget cached path verdicts and measure again."),
    ] = False,
    quality: Annotated[
        bool, typer.Option(help="Also run eager fp32 to give each path's dB (slower).")
    ] = True,
) -> None:
    """What serves on this machine, measured; models, services, settings."""
    report = collect(recalibrate=recalibrate, quality=quality)
    if as_json:
        typer.echo(json.dumps(report, indent=1, default=str))
    else:
        render(report)
