"""The server's limits under attack, against `chacha serve` in its own process: a flood of
conversations within the connection cap and a burst beyond it, 100 MB bodies (announced and
chunked), connections that never finish their headers, and a 10-minute recording given to
`chacha transcribe`. Each part runs once; the report holds what each client got and the
server's memory before and after.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections import Counter
from pathlib import Path

import httpx

from device.bench.footprint import proc_memory_mb, served
from device.bench.load import percentile

TOKEN = "bench"
MB = 1_000_000
_BLOCK = 64 * 1024


def _memory(pid: int) -> dict:
    return {
        "rss_mb": round(proc_memory_mb(pid, "VmRSS"), 1),
        "hwm_mb": round(proc_memory_mb(pid, "VmHWM"), 1),
    }


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {TOKEN}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _status(answer: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return int(match.group(1)) if match else None


def _error_name(exc: BaseException) -> str:
    return type(exc).__name__


async def _connect(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), 30)
    except BaseException:
        sock.close()
        raise
    return sock


async def _exchange(sock: socket.socket, data: bytes, wait_s: float) -> tuple[bytes, str | None]:
    """Send `data`, then read until the server closes: what came, and the error that ended it
    (None: a clean close). Raw socket reads, so bytes that arrived before a reset are kept."""
    loop = asyncio.get_running_loop()
    answer = b""
    try:
        await loop.sock_sendall(sock, data)
        async with asyncio.timeout(wait_s):
            while chunk := await loop.sock_recv(sock, 65536):
                answer += chunk
    except TimeoutError:
        return answer, "timeout"
    except OSError as exc:
        return answer, _error_name(exc)
    return answer, None


def _outcome(answer: bytes, error: str | None) -> str:
    status = _status(answer)
    if status is not None:
        return str(status)
    return f"error: {error}" if error else "closed without an answer"


# --- flood: within the cap, then a burst beyond it ----------------------------------------------


async def _flood(url: str, requests: int, connections: int) -> dict:
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    times: list[float] = []
    queue = iter(range(requests))

    async def worker(client: httpx.AsyncClient, n: int) -> None:
        for i in queue:
            started = time.perf_counter()
            try:
                async with client.stream(
                    "POST", f"{url}/v1/chat", json={"conversation": f"flood-{n}", "text": f"배고파 {i}"}
                ) as response:
                    async for _ in response.aiter_lines():
                        pass
                statuses[str(response.status_code)] += 1
                times.append(time.perf_counter() - started)
            except Exception as exc:  # noqa: BLE001 - each failure is counted by its kind
                errors[_error_name(exc)] += 1

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {TOKEN}"}, limits=limits, timeout=60
    ) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client, n) for n in range(connections)))
        wall = time.perf_counter() - started
    return {
        "connections": connections,
        "requests": requests,
        "status": dict(statuses),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "p50_ms": round(statistics.median(times) * 1000, 1) if times else None,
        "p99_ms": round(percentile(times, 99) * 1000, 1) if times else None,
        "wall_s": round(wall, 2),
    }


async def _burst(url: str, connections: int) -> dict:
    """`connections` sockets opened at once, then each sends a turn and reads to the end."""
    host, port = _address(url)
    body = json.dumps({"conversation": "burst", "text": "배고파"}).encode()
    request = (
        _head(
            "POST",
            "/v1/chat",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Connection: close",
        )
        + body
    )
    outcomes: Counter[str] = Counter()

    async def connect() -> socket.socket | None:
        try:
            return await _connect(host, port)
        except Exception as exc:  # noqa: BLE001 - each failure is counted by its kind
            outcomes[f"connect failed: {_error_name(exc)}"] += 1
            return None

    async def ask(sock: socket.socket) -> None:
        with sock:
            outcomes[_outcome(*await _exchange(sock, request, 30))] += 1

    opened = [s for s in await asyncio.gather(*(connect() for _ in range(connections))) if s]
    await asyncio.gather(*(ask(sock) for sock in opened))
    return {"connections": connections, "outcomes": dict(outcomes)}


def _still_answers(url: str) -> dict:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    health = httpx.get(f"{url}/v1/health", headers=headers, timeout=10)
    chat = httpx.post(f"{url}/v1/chat", headers=headers, json={"text": "배고파"}, timeout=30)
    lines = [json.loads(line) for line in chat.text.splitlines() if line.strip()]
    return {
        "health": health.status_code,
        "chat": chat.status_code,
        "chat_events": len(lines),
    }


# --- big bodies -----------------------------------------------------------------------------


def _push_body(url: str, head: bytes, block: bytes, total: int) -> dict:
    """Send `head`, then `block` repeated up to `total` bytes, until the server answers or closes;
    then read its answer to the end."""
    sock = socket.create_connection(_address(url), timeout=30)
    sent = 0
    answer = b""
    stopped_by = "sent it all"
    started = time.perf_counter()
    answered_s = None
    try:
        sock.sendall(head)
        view = memoryview(block)
        offset = 0
        deadline = started + 120
        while sent < total and time.perf_counter() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                stopped_by = "the server answered"
                break
            if writable:
                piece = view[offset : offset + min(len(block) - offset, total - sent)]
                try:
                    n = sock.send(piece)
                except OSError as exc:
                    stopped_by = f"send failed: {_error_name(exc)}"
                    break
                sent += n
                offset = (offset + n) % len(block)
        try:
            while chunk := sock.recv(65536):
                if answered_s is None:
                    answered_s = time.perf_counter() - started
                answer += chunk
        except OSError as exc:
            if not answer:
                stopped_by += f"; reading the answer: {_error_name(exc)}"
    finally:
        sock.close()
    body = answer.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in answer else b""
    return {
        "status": _status(answer),
        "sent_bytes": sent,
        "stopped": stopped_by,
        "answer_s": round(answered_s, 3) if answered_s is not None else None,
        "answer_bytes": len(answer),
        "answer_body": body.decode("utf-8", "replace")[:300],
    }


def _big_body(url: str, pid: int, size: int, chunked: bool) -> dict:
    before = _memory(pid)
    if chunked:
        head = _head("POST", "/v1/chat", "Content-Type: application/json", "Transfer-Encoding: chunked")
        block = f"{_BLOCK:x}\r\n".encode() + b"x" * _BLOCK + b"\r\n"
        total = (size // _BLOCK) * len(block)
    else:
        head = _head("POST", "/v1/chat", "Content-Type: application/json", f"Content-Length: {size}")
        block = b"x" * _BLOCK
        total = size
    result = _push_body(url, head, block, total)
    time.sleep(0.2)
    after = _memory(pid)
    return {
        "announced_bytes": size,
        "chunked": chunked,
        **result,
        "server_before": before,
        "server_after": after,
        "hwm_growth_mb": round(after["hwm_mb"] - before["hwm_mb"], 1),
    }


# --- slow headers -----------------------------------------------------------------------------


async def _slow_headers(url: str, connections: int, wait_s: float) -> dict:
    """`connections` sockets that send half a request line, then nothing, for `wait_s`."""
    host, port = _address(url)
    outcomes: Counter[str] = Counter()
    closed_after: list[float] = []

    async def one() -> None:
        try:
            sock = await _connect(host, port)
        except Exception as exc:  # noqa: BLE001
            outcomes[f"connect failed: {_error_name(exc)}"] += 1
            return
        started = time.perf_counter()
        with sock:
            answer, error = await _exchange(sock, b"POST /v1/ch", wait_s)
        if error == "timeout":
            outcomes["still open"] += 1
        else:
            outcomes[_outcome(answer, error)] += 1
            closed_after.append(time.perf_counter() - started)

    await asyncio.gather(*(one() for _ in range(connections)))
    return {
        "connections": connections,
        "waited_s": wait_s,
        "still_open": outcomes.get("still open", 0),
        "outcomes": dict(outcomes),
        "closed_after_s": {
            "min": round(min(closed_after), 2) if closed_after else None,
            "max": round(max(closed_after), 2) if closed_after else None,
        },
    }


# --- a long recording for the CLI --------------------------------------------------------------


def _long_recording(workdir: Path, seconds: int) -> dict:
    path = workdir / "long.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        silence = b"\x00\x00" * 16000
        for _ in range(seconds):
            out.writeframes(silence)
    import device

    root = Path(device.__file__).resolve().parent.parent
    env = {
        **os.environ,
        "HOME": str(workdir),
        "XDG_DATA_HOME": str(workdir / "data"),
        "XDG_CONFIG_HOME": str(workdir / "config"),
        "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p),
    }
    env.pop("CHACHA_CONFIG", None)
    command = [sys.executable, "-m", "device.cli", "transcribe", str(path)]
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if timer:
        command = [timer, "-v", *command]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    took = time.perf_counter() - started
    lines = done.stderr.splitlines()
    peak_kb = None
    for line in lines:
        if "Maximum resident set size" in line:
            peak_kb = int(line.rsplit(":", 1)[1])
    how = "/usr/bin/time -v"
    if peak_kb is None:
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        how = "getrusage(RUSAGE_CHILDREN), the largest child so far"
    error = next((line for line in lines if line.strip() and not line.startswith("\t")), "")
    return {
        "audio_s": seconds,
        "file_bytes": path.stat().st_size,
        "exit_code": done.returncode,
        "took_s": round(took, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "peak_rss_from": how,
        "error": error.replace(str(workdir), "<tmp>"),
    }


# --- all of it ----------------------------------------------------------------------------


def run(
    data_dir: Path,
    *,
    requests: int = 1024,
    connections: int = 48,
    burst: int = 200,
    body_bytes: int = 100 * MB,
    slow: int = 150,
    header_timeout_s: float = 2.0,
    recording_s: int = 600,
) -> dict:
    """Each part once against `chacha serve` (defaults, phrasebook brain); the slow-headers part
    against a second server whose only change is `server.header_timeout_s`."""
    from device.stt.settings import STTSettings
    from inference_server.settings import ServerSettings

    started = time.perf_counter()
    defaults = ServerSettings()
    report: dict = {
        "settings": {
            "max_body_bytes": defaults.max_body_bytes,
            "max_header_bytes": defaults.max_header_bytes,
            "header_timeout_s": defaults.header_timeout_s,
            "body_timeout_s": defaults.body_timeout_s,
            "max_connections": defaults.max_connections,
            "keep_alive_s": defaults.keep_alive_s,
            "stt_max_audio_s": STTSettings().max_audio_s,
        },
        "cpus": len(os.sched_getaffinity(0)),
    }
    with tempfile.TemporaryDirectory(prefix="chacha-limits-") as tmp:
        work = Path(tmp)
        with served(data_dir / "main") as (url, proc, _):
            before = _memory(proc.pid)
            flood = asyncio.run(_flood(url, requests, connections))
            flood["server_before"], flood["server_after"] = before, _memory(proc.pid)
            report["flood"] = flood
            over = asyncio.run(_burst(url, burst))
            over["afterwards"] = _still_answers(url)
            over["server_after"] = _memory(proc.pid)
            report["burst"] = over
            report["big_body"] = _big_body(url, proc.pid, body_bytes, chunked=False)
            report["big_body_chunked"] = _big_body(url, proc.pid, body_bytes, chunked=True)
            report["big_body_afterwards"] = _still_answers(url)

        config = work / "chacha.yaml"
        config.write_text(f"server:\n  header_timeout_s: {header_timeout_s}\n", encoding="utf-8")
        with served(data_dir / "slow", config=config) as (url, proc, _):
            slow_report = asyncio.run(_slow_headers(url, slow, header_timeout_s + 2))
            slow_report["header_timeout_s"] = header_timeout_s
            slow_report["afterwards"] = _still_answers(url)
            slow_report["server_after"] = _memory(proc.pid)
            report["slow_headers"] = slow_report

        report["long_recording"] = _long_recording(work, recording_s)
    report["took_s"] = round(time.perf_counter() - started, 1)
    return report


def render(report: dict) -> str:
    """A short table of the report."""
    f, b, s, r = report["flood"], report["burst"], report["slow_headers"], report["long_recording"]
    rows = [
        (
            f"flood: {f['requests']} turns on {f['connections']} connections",
            f"status {f['status']}, {f['errors']} errors, p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms, "
            f"RSS {f['server_before']['rss_mb']} → {f['server_after']['rss_mb']} MB",
        ),
        (
            f"burst: {b['connections']} connections at once",
            f"{b['outcomes']}; afterwards health {b['afterwards']['health']}, chat {b['afterwards']['chat']}",
        ),
    ]
    for key, name in (("big_body", "Content-Length"), ("big_body_chunked", "chunked")):
        d = report[key]
        rows.append(
            (
                f"{d['announced_bytes'] / MB:g} MB body ({name})",
                f"status {d['status']} after {d['answer_s']} s, {d['sent_bytes'] / MB:.1f} MB sent; "
                f"RSS {d['server_before']['rss_mb']} → {d['server_after']['rss_mb']} MB, "
                f"peak +{d['hwm_growth_mb']} MB",
            )
        )
    rows.append(
        (
            f"slow headers: {s['connections']} half request lines",
            f"{s['still_open']} still open after {s['waited_s']:g} s "
            f"(header_timeout_s {s['header_timeout_s']:g}); {s['outcomes']}",
        )
    )
    rows.append(
        (
            f"transcribe: {r['audio_s'] / 60:g}-minute WAV",
            f"exit {r['exit_code']} after {r['took_s']} s, peak RSS {r['peak_rss_mb']} MB: "
            f"{r['error'][:100]}",
        )
    )
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {text}" for name, text in rows)
