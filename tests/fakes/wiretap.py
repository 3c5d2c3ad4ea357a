"""A TCP forwarder between the doll and its server that notes every HTTP request going out:
what left the doll, seen on the wire, not as the doll's code says it sent it."""

from __future__ import annotations

import asyncio
import contextlib
import re

_REQUEST_LINE = re.compile(rb"(GET|POST|PATCH|PUT|DELETE) (\S+) HTTP/1\.1\r\n")


class Wiretap:
    """Listens on 127.0.0.1 (``url``) and forwards to ``target_url``; ``requests()`` are the
    (method, path) of the requests that went through, in order."""

    def __init__(self, target_url: str) -> None:
        self._target = target_url.removeprefix("http://").rsplit(":", 1)
        self._outgoing = bytearray()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> Wiretap:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info) -> None:
        if self._server is not None:
            self._server.close()

    def requests(self) -> list[tuple[str, str]]:
        return [(m.decode(), p.decode()) for m, p in _REQUEST_LINE.findall(bytes(self._outgoing))]

    async def _handle(self, client_reader, client_writer) -> None:
        host, port = self._target
        server_reader, server_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(
            self._pipe(client_reader, server_writer, self._outgoing), self._pipe(server_reader, client_writer)
        )

    @staticmethod
    async def _pipe(reader, writer, note: bytearray | None = None) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if note is not None:
                    note.extend(data)
                writer.write(data)
                await writer.drain()
        writer.close()
