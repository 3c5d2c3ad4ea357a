"""A local stand-in for Gemini's REST API with realistic pacing, so latency runs repeat.

It answers `:streamGenerateContent?alt=sse` with a fixed reply, the first text after
`first_token_s` and then `tokens_per_s` (about 1.5 Korean characters a token), and
`:generateContent` with the whole reply after the same total time. The real google-genai
SDK talks to it exactly as it talks to Google.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHARS_PER_TOKEN = 1.5


def _chunk(text: str, finish: str | None = None) -> dict:
    candidate: dict = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "modelVersion": "paced-bench",
        "usageMetadata": {
            "promptTokenCount": 100,
            "candidatesTokenCount": len(text),
            "totalTokenCount": 100 + len(text),
        },
    }


class PacedGemini:
    def __init__(
        self, reply: str, *, first_token_s: float = 0.5, tokens_per_s: float = 40.0, chunk_tokens: int = 4
    ) -> None:
        self.reply = reply
        self.first_token_s = first_token_s
        self.tokens_per_s = tokens_per_s
        self.chunk_chars = max(1, round(chunk_tokens * CHARS_PER_TOKEN))
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if ":streamGenerateContent" in self.path:
                    owner._stream(self)
                else:
                    owner._whole(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def seconds_per_chunk(self) -> float:
        return self.chunk_chars / CHARS_PER_TOKEN / self.tokens_per_s

    @property
    def total_s(self) -> float:
        chunks = -(-len(self.reply) // self.chunk_chars)
        return self.first_token_s + (chunks - 1) * self.seconds_per_chunk

    def _stream(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        time.sleep(self.first_token_s)
        pieces = [self.reply[i : i + self.chunk_chars] for i in range(0, len(self.reply), self.chunk_chars)]
        for n, piece in enumerate(pieces):
            if n:
                time.sleep(self.seconds_per_chunk)
            event = _chunk(piece, "STOP" if n == len(pieces) - 1 else None)
            data = f"data: {json.dumps(event, ensure_ascii=False)}\r\n\r\n".encode()
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()

    def _whole(self, handler: BaseHTTPRequestHandler) -> None:
        time.sleep(self.total_s)
        body = json.dumps(_chunk(self.reply, "STOP"), ensure_ascii=False).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def __enter__(self) -> PacedGemini:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
