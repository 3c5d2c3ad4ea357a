"""Assembling and running the server: from settings to a listening socket."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
from collections.abc import Awaitable
from datetime import datetime
from zoneinfo import ZoneInfo

import uvicorn

from inference_server import sd_notify
from inference_server.app import create_app
from inference_server.backends import registry
from inference_server.backends.base import LLMBackend
from inference_server.backends.registry import BuildContext
from inference_server.chat import ChatService
from inference_server.disk import DiskGuard
from inference_server.errors import InferenceError
from inference_server.limits import guarded_h11
from inference_server.memory import MemoryService
from inference_server.quota import QuotaLedger
from inference_server.settings import LLMSettings, MemorySettings, PersonaSettings, ServerSettings
from inference_server.shared.clock import WallClock
from inference_server.shared.secrets import Secrets
from inference_server.startup import check_data_dir, load_persona
from inference_server.store import ConversationStore

_LOGGER = logging.getLogger(__name__)

DATABASE_NAME = "conversations.sqlite3"
QUOTA_NAME = "quota.sqlite3"


def build_chat_service(
    server: ServerSettings,
    llm: LLMSettings,
    persona: PersonaSettings,
    secrets: Secrets | None = None,
    memory: MemorySettings | None = None,
) -> ChatService:
    """The chat service the settings describe; `secrets` defaults to those in the environment now,
    `memory` to the default memory settings.

    Its steps are those of `inference_server.startup` (what `chacha config` and `chacha doctor`
    check), in the same order, so both stop with the same error.
    """
    secrets = Secrets() if secrets is None else secrets
    check_data_dir(server.data_dir)
    # One clock for every stamp and window: it never runs backwards (a Pi has no real-time clock).
    clock = WallClock()
    backends: list[LLMBackend] = []
    ledger: QuotaLedger | None = None
    for name in llm.backends:
        spec = registry.get(name)
        if spec.quota and ledger is None:  # one ledger, made only when a backend counts requests
            ledger = QuotaLedger(server.data_dir / QUOTA_NAME, clock=clock, synchronized=clock.synchronized)
            clock.seen(ledger.newest())
        context = BuildContext(server, llm, secrets, clock, ledger if spec.quota else None)
        backends.append(spec.create(context))
    memory = MemorySettings() if memory is None else memory
    book = load_persona(persona, server)
    store = ConversationStore(server.data_dir / DATABASE_NAME, clock=clock)
    clock.seen(store.newest())
    remembering = (
        MemoryService(
            store,
            memory,
            backends,
            name=book.current.name,
            partner=book.current.partner,
            timezone=persona.timezone,
        )
        if memory.enabled
        else None
    )
    if remembering is not None:
        remembering.embedder.check()  # a missing embedding model stops the server here, clearly
    # A full disk does not stop the server (a doll that cannot start is mute): it starts, says so
    # in the log (here, once) and in its health, and 차차 says that his notebook is full.
    disk = DiskGuard(server.data_dir, server.min_free_mb)
    disk.check()
    zone = ZoneInfo(persona.timezone)
    return ChatService(
        book,
        store,
        backends,
        history_turns=server.history_turns,
        history_tokens=server.history_tokens,
        summarize=server.summarize_history,
        max_sentences=server.max_sentences,
        timezone=persona.timezone,
        clock=lambda: datetime.fromtimestamp(clock(), zone),
        wall_clock=clock,
        memory=remembering,
        breaker=llm.breaker,
        summary_quota_reserve=server.summary_quota_reserve,
        disk=disk,
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before uvicorn does, so a busy port is our clear error, not a traceback."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise InferenceError(
            f"cannot resolve server.host {host!r}: use an address such as 127.0.0.1"
        ) from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InferenceError(
                f"port {port} on {host} is already in use: stop the other program "
                f"(see `ss -ltnp 'sport = :{port}'`) or set server.port in chacha.yaml"
            ) from None
        if exc.errno == errno.EACCES:
            raise InferenceError(f"no permission to listen on port {port}: use a port above 1023") from None
        raise InferenceError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(chat: ChatService, token: str, settings: ServerSettings, log_level: str) -> uvicorn.Config:
    """uvicorn's settings for the API: the limits of `settings` on every connection (the size and
    the deadline of a request's headers, the deadline of its body, the number of open
    connections, the idle time between requests) and in the app."""
    return uvicorn.Config(
        create_app(chat, token=token, settings=settings),
        http=guarded_h11(settings.header_timeout_s, settings.body_timeout_s, settings.max_connections),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        timeout_keep_alive=settings.keep_alive_s,  # typed int in uvicorn, used as a float
        log_config=None,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=3,
    )


def serve(
    chat: ChatService,
    token: str,
    sock: socket.socket,
    *,
    settings: ServerSettings | None = None,
    log_level: str = "info",
) -> None:
    """Run the API on an already bound socket until interrupted (SIGINT/SIGTERM), with the
    limits of `settings` (default: ServerSettings())."""
    settings = ServerSettings() if settings is None else settings
    server = uvicorn.Server(uvicorn_config(chat, token, settings, log_level))
    host, port = sock.getsockname()[:2]
    _LOGGER.info(
        "listening on http://%s:%d (backend chain: %s)", host, port, ", ".join(b.name for b in chat.backends)
    )
    try:
        asyncio.run(_closing_after(chat, _serve_notifying(server, sock, f"listening on {host}:{port}")))
    finally:
        chat.store.close()


async def _closing_after(chat: ChatService, serving: Awaitable[None]) -> None:
    """Serve; then, on the loop that opened them, close the service's connections to its backends."""
    try:
        await serving
    finally:
        await chat.aclose()


async def _serve_notifying(server: uvicorn.Server, sock: socket.socket, status: str) -> None:
    """Serve; tell systemd once ready (Type=notify) and keep its watchdog fed from the loop."""
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    alive = None
    if server.started:
        sd_notify.ready(status)
        alive = asyncio.create_task(sd_notify.keep_alive())
    try:
        await serving
    finally:
        if alive is not None:
            alive.cancel()


class BackgroundServer:
    """The API on 127.0.0.1 in a thread of this process, for one-shot commands like `chacha talk`.

    It is the real server over real HTTP, with the same limits (`settings`, default
    ServerSettings()); only its lifetime is the command's.
    """

    def __init__(
        self, chat: ChatService, token: str, settings: ServerSettings | None = None, *, port: int = 0
    ) -> None:
        self._sock = bind_socket("127.0.0.1", port)  # 0: any free port
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.chat = chat
        settings = ServerSettings() if settings is None else settings
        self._server = uvicorn.Server(uvicorn_config(chat, token, settings, "warning"))
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._run, name="inference-server", daemon=True)
        self._error: BaseException | None = None

    @property
    def config(self) -> uvicorn.Config:
        """What uvicorn serves it with: the limits of its `settings`, as `chacha serve` has them."""
        return self._server.config

    def _run(self) -> None:
        try:
            asyncio.run(_closing_after(self.chat, self._server.serve(sockets=[self._sock])))
        except BaseException as exc:  # reported by start()
            self._error = exc

    def start(self, timeout_s: float = 10.0) -> BackgroundServer:
        self._thread.start()
        waited = 0.0
        while not self._server.started and self._thread.is_alive() and waited < timeout_s:
            threading.Event().wait(0.01)
            waited += 0.01
        if not self._server.started:
            raise InferenceError(f"the built-in server did not start: {self._error or 'timed out'}")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()
        self.chat.store.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
