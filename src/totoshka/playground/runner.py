"""Start the emulator, the bot and the web chat page together; stop them cleanly.

Layout of one playground, all on this machine:

* the Bot API emulator on ``127.0.0.1`` and a free port, in this process's event
  loop (it is cheap, and the page needs its in-memory world);
* the page (:mod:`totoshka.playground.page`) on ``host:port``, sharing that world;
* the bot as a **child process** (``python -m totoshka run``), configured only by
  environment variables, exactly as an operator runs it against Telegram. A child
  keeps inference, torch's threads and the bot's own signal handling out of this
  process, and proves the bot needs nothing playground-specific.

Zero configuration: a generated token (the emulator accepts any), the embedded
SQLite queue in a temporary folder (removed on exit: the emulator's world does not
outlive the run, so queued jobs could not be delivered later anyway), the bot's
default memory FSM. Model weights come from the catalog into the usual cache,
once, before the bot starts (``TOTOSHKA_MODEL_MIRROR`` selects an offline mirror):
`prepare_models` gets the engine settings `totoshka playground` read, the same the
child reads from the environment it inherits.

Shutdown order matters: the bot is asked to stop first (SIGTERM; it finishes or
persists in-flight jobs) while the emulator still answers its last calls; then
the servers close. The child runs in its own session, so a terminal's Ctrl+C
reaches only us and we decide that order; on Linux it also gets SIGTERM if we die.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from totoshka.emulator.server import EmulatorServer
from totoshka.engine.catalog import OPERATOR
from totoshka.engine.errors import EngineError
from totoshka.engine.factory import open_engine
from totoshka.engine.settings import EngineSettings
from totoshka.engine.store import split_mirrors
from totoshka.playground.page import create_page_app

Echo = Callable[[str], None]
# progress(model, file, done_bytes, total_bytes_or_None), as ModelStore reports it
Progress = Callable[[Any, Any, int, int | None], None]

BOT_NAME = "Totoshka"

# Settings that would make the child something other than the embedded,
# long-polling bot against our emulator; a developer's shell may export them.
_OVERRIDDEN_ENV = (
    "TOTOSHKA_BOT_TOKEN",
    "TOTOSHKA_API_URL",
    "TOTOSHKA_WEBHOOK_URL",
    "TOTOSHKA_WEBHOOK_SECRET",
    "TOTOSHKA_JOBS_BACKEND",
    "TOTOSHKA_BROKER_URL",
    "TOTOSHKA_RESULT_BACKEND",
    "TOTOSHKA_REDIS_URL",
    "TOTOSHKA_QUEUE_PATH",
)
# Paths a child in another working directory must receive as absolute paths.
_PATH_ENV = ("TOTOSHKA_MODEL_MIRROR", "TOTOSHKA_CACHE_DIR", "TOTOSHKA_DATA_DIR")


class PlaygroundError(RuntimeError):
    """The playground could not start (port taken, bot crashed at start-up, ...)."""


def generate_token() -> str:
    """A token of Telegram's shape; the emulator derives the bot id from its first part."""
    bot_id = 7_000_000_000 + secrets.randbelow(999_999_999)
    return f"{bot_id}:{secrets.token_urlsafe(26)}"


def default_bot_command() -> list[str]:
    """The real bot, as ``totoshka run`` – through this interpreter, so the venv is kept."""
    return [sys.executable, "-m", "totoshka", "run"]


def bot_environment(
    base: Mapping[str, str], *, token: str, api_url: str, state_dir: Path, log_level: str
) -> dict[str, str]:
    """The child's environment: the caller's, minus mode switches, plus the playground's."""
    env = {k: v for k, v in base.items() if k not in _OVERRIDDEN_ENV}
    for name in _PATH_ENV:
        value = env.get(name)
        if value and name == "TOTOSHKA_MODEL_MIRROR":  # a list of folders and URLs
            mirrors = split_mirrors(value)
            env[name] = os.pathsep.join(
                m if isinstance(m, str) else str(m.resolve()) for m in mirrors
            )
        elif value and "://" not in value:
            env[name] = str(Path(value).expanduser().resolve())
    env.update(
        TOTOSHKA_BOT_TOKEN=token,
        TOTOSHKA_API_URL=api_url,
        TOTOSHKA_JOBS_BACKEND="embedded",
        TOTOSHKA_QUEUE_PATH=str(state_dir / "jobs.sqlite3"),
        TOTOSHKA_LOG_LEVEL=log_level,
        PYTHONUNBUFFERED="1",
    )
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: deliver SIGTERM to the bot if the playground process dies (even SIGKILL)."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class PlaygroundOptions:
    """What `totoshka playground` may change; every field has a working default."""

    host: str = "127.0.0.1"
    port: int = 8080
    emulator_port: int = 0
    bot_command: Sequence[str] | None = None  # default: the real bot (`totoshka run`)
    log_level: str = "WARNING"
    ready_timeout: float = 180.0  # first start imports torch and may build caches
    stop_timeout: float = 20.0
    env: Mapping[str, str] | None = None  # default: os.environ
    state_dir: Path | None = None  # default: a temporary folder, removed on stop
    extra_env: Mapping[str, str] = field(default_factory=dict)


class Playground:
    """One running playground: ``await start()``, ``await wait()``, ``await stop()``."""

    def __init__(
        self, options: PlaygroundOptions | None = None, *, echo: Echo | None = None
    ) -> None:
        self.options = options or PlaygroundOptions()
        self.echo: Echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
        self.token = generate_token()
        self.bot_id = int(self.token.split(":", 1)[0])
        self.emulator = EmulatorServer(
            "127.0.0.1", self.options.emulator_port, bot_name=BOT_NAME, default_bot_id=self.bot_id
        )
        self._page_runner: web.AppRunner | None = None
        self._page_port = self.options.port
        self._process: asyncio.subprocess.Process | None = None
        self._output_task: asyncio.Task[None] | None = None
        self._bot_tail: deque[str] = deque(maxlen=40)
        self._stopping = False
        self._owns_state_dir = self.options.state_dir is None
        self.state_dir = self.options.state_dir or Path(
            tempfile.mkdtemp(prefix="totoshka-playground-")
        )

    # -- addresses ----------------------------------------------------------------
    @property
    def url(self) -> str:
        """The page, e.g. ``http://127.0.0.1:8080/``."""
        host = self.options.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._page_port}/"

    @property
    def api_url(self) -> str:
        """The emulator's Bot API base URL (what the bot gets as ``TOTOSHKA_API_URL``)."""
        return self.emulator.url

    @property
    def bot_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # -- lifecycle ----------------------------------------------------------------
    async def start(self) -> None:
        """Start the servers and the bot; return once the bot polls for updates."""
        try:
            await self.emulator.start()
            await self._start_page()
            await self._start_bot()
            await self._wait_until_polling()
        except BaseException:
            await self.stop()
            raise

    async def wait(self) -> int:
        """Block until the bot exits by itself (a crash); returns its exit status."""
        assert self._process is not None
        return await self._process.wait()

    async def stop(self) -> None:
        """Stop the bot first (it may still call the emulator), then the servers."""
        await self._stop_bot()
        if self._page_runner is not None:
            await self._page_runner.cleanup()
            self._page_runner = None
        await self.emulator.stop()
        if self._owns_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    async def __aenter__(self) -> Playground:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- parts --------------------------------------------------------------------
    async def _start_page(self) -> None:
        app = create_page_app(self.emulator.world, self.bot_id)
        # Open tabs hold long polls (up to 25 s): cancel them when a tab goes away, and
        # do not let them hold up Ctrl+C.
        self._page_runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=0.5,
        )
        await self._page_runner.setup()
        site = web.TCPSite(self._page_runner, self.options.host, self.options.port)
        try:
            await site.start()
        except OSError as error:
            raise PlaygroundError(
                f"cannot listen on {self.options.host}:{self.options.port} ({error.strerror}); "
                "choose another --port (0 picks a free one)"
            ) from None
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self._page_port = sockets[0].getsockname()[1]

    async def _start_bot(self) -> None:
        command = list(self.options.bot_command or default_bot_command())
        env = bot_environment(
            self.options.env if self.options.env is not None else os.environ,
            token=self.token,
            api_url=self.api_url,
            state_dir=self.state_dir,
            log_level=self.options.log_level,
        )
        env.update(self.options.extra_env)
        self._process = await asyncio.create_subprocess_exec(
            *command,
            env=env,
            cwd=self.state_dir,  # no stray .env from wherever the user stands
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self._output_task = asyncio.create_task(self._forward_output(self._process))

    async def _forward_output(self, process: asyncio.subprocess.Process) -> None:
        """Show the bot's log lines (warnings and up by default), prefixed, and keep a tail."""
        assert process.stdout is not None
        while line := await process.stdout.readline():
            text = line.decode("utf-8", errors="replace").rstrip()
            self._bot_tail.append(text)
            if not self._stopping:  # its "received SIGTERM" is our own doing, not news
                self.echo(f"bot | {text}")

    async def _wait_until_polling(self) -> None:
        """The bot is ready once it has called getUpdates (it then receives every message)."""
        assert self._process is not None
        account = self.emulator.world.bot(self.bot_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.ready_timeout
        while account.poll_generation == 0:
            if self._process.returncode is not None:
                if self._output_task is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._output_task
                tail = "\n".join(self._bot_tail) or "(no output)"
                raise PlaygroundError(
                    f"the bot exited at start-up with status {self._process.returncode}:\n{tail}"
                )
            if loop.time() > deadline:
                raise PlaygroundError(
                    f"the bot did not start polling within {self.options.ready_timeout:.0f} s"
                )
            await asyncio.sleep(0.1)

    async def _stop_bot(self) -> None:
        process, self._process = self._process, None
        self._stopping = True
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), self.options.stop_timeout)
            except TimeoutError:
                self.echo("the bot did not stop in time; killing it")
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._output_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._output_task, 5)
            self._output_task = None


def prepare_models(
    settings: EngineSettings, progress: Progress | None = None, echo: Echo | None = None
) -> list[str]:
    """Fetch every built-in model the cache lacks; returns the ids that stay unavailable.

    Runs before the bot starts so the first photo is not stuck behind a download, and
    so the progress is shown where the user looks (this terminal). A model that cannot
    be fetched (offline, a mirror that lacks it) is reported, not fatal: the bot still
    offers every style whose model is present. `settings` are the engine settings the
    bot child will read from the same environment (cache, mirror, data dir).
    """
    say = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    engine = open_engine(settings)
    catalog, store = engine.catalog, engine.store
    wanted = [m for m in catalog.models() if m.origin != OPERATOR]
    missing = [m for m in wanted if not store.is_present(m)]
    if not missing:
        return []
    source = f"mirror {store.mirror}" if store.mirror is not None else "the catalog's URLs"
    say(
        f"models: {len(wanted) - len(missing)} of {len(wanted)} in the cache; fetching "
        f"{len(missing)} into {store.cache_dir} from {source}"
    )
    unavailable = []
    for model in missing:
        try:
            store.fetch(model, progress=progress)
        except (EngineError, OSError) as error:
            unavailable.append(model.id)
            say(
                f"models: {model.id} unavailable ({getattr(error, 'message', error)}); "
                "its styles are skipped"
            )
    return unavailable


async def run_until_signalled(playground: Playground, on_ready: Callable[[], None]) -> int:
    """Run ``playground`` until SIGINT/SIGTERM (0) or until the bot dies (1).

    A signal during start-up (the bot may take a while to import) cancels the start,
    which cleans up after itself.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    stopped = asyncio.create_task(stop.wait())
    try:
        starting = asyncio.create_task(playground.start())
        await asyncio.wait({stopped, starting}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            playground.echo("stopped before the bot was ready")
            return 130
        starting.result()  # re-raise a start-up failure
        on_ready()
        crashed = asyncio.create_task(playground.wait())
        done, _ = await asyncio.wait({stopped, crashed}, return_when=asyncio.FIRST_COMPLETED)
        if crashed in done:
            playground.echo(f"the bot exited unexpectedly (status {crashed.result()}); stopping")
            return 1
        crashed.cancel()
        playground.echo("stopping…")
        return 0
    finally:
        stopped.cancel()
        await playground.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
