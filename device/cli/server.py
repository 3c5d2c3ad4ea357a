"""`chacha serve`, and the server every other command talks to: its token and its client."""

from __future__ import annotations

import contextlib
import logging
import secrets
from argparse import Namespace
from collections.abc import Iterator

from device.config import ChachaConfig
from inference_server.shared.secrets import Secrets

_LOGGER = logging.getLogger(__name__)

TOKEN_ENV = "CHACHA_API_TOKEN"
TOKEN_HINT = (
    f"export {TOKEN_ENV}=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))') "
    "and give the same value to the server and its clients"
)


def _api_token(required_for: str) -> str:
    from device.cli.errors import CommandError

    token = Secrets().chacha_api_token
    if token is None:
        raise CommandError(f"{TOKEN_ENV} is not set, and {required_for} needs it: {TOKEN_HINT}")
    return token.get_secret_value()


def _build_chat(config: ChachaConfig):
    from inference_server.runtime import build_chat_service

    return build_chat_service(config.server, config.llm, config.persona, memory=config.memory)


@contextlib.contextmanager
def server_client(config: ChachaConfig) -> Iterator:
    """A client of the configured server, or of one started in this process when none is set."""
    from inference_server.api import InferenceClient

    if config.client.url:
        yield InferenceClient(
            config.client.url, _api_token("talking to client.url"), timeout_s=config.client.timeout_s
        )
        return
    from inference_server.runtime import BackgroundServer

    token = secrets.token_urlsafe(24)
    with BackgroundServer(_build_chat(config), token, config.server) as server:
        _LOGGER.debug("started an in-process server at %s", server.url)
        yield InferenceClient(server.url, token, timeout_s=config.client.timeout_s)


# --- serve -------------------------------------------------------------------------------


def serve(args: Namespace, config: ChachaConfig) -> int:
    from inference_server.runtime import bind_socket
    from inference_server.runtime import serve as run_server

    token = _api_token("the server")
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    sock = bind_socket(host, port)
    chat = _build_chat(config)
    for status in chat.backend_status():
        if not status.available:
            _LOGGER.warning("backend %s is off: %s", status.name, status.reason)
    run_server(chat, token, sock, settings=config.server, log_level="debug" if args.debug else "info")
    return 0
