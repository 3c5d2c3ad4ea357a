"""The server under load: N conversations at once on loopback, the server's own overhead.

The phrasebook backend answers in well under a millisecond, so what the client measures is
the server itself: HTTP, auth, the history store, the persona prompt, splitting, streaming.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import httpx


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile of ``values`` (one of them, not an interpolation)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def _conversation(client: httpx.AsyncClient, url: str, n: int, turns: int, out: list[float]) -> None:
    for t in range(turns):
        started = time.perf_counter()
        async with client.stream(
            "POST", f"{url}/v1/chat", json={"conversation": f"load-{n}", "text": f"오늘 뭐 했어 {t}"}
        ) as response:
            async for _ in response.aiter_lines():
                pass
        out.append(time.perf_counter() - started)


def server_load(data_dir: Path, *, conversations: int = 16, turns: int = 25) -> dict:
    """N conversations at once against `chacha serve` in its own process."""
    from device.bench.footprint import served

    async def run(url: str) -> list[float]:
        times: list[float] = []
        limits = httpx.Limits(max_connections=conversations)
        async with httpx.AsyncClient(
            headers={"Authorization": "Bearer bench"}, limits=limits, timeout=30
        ) as client:
            await asyncio.gather(*(_conversation(client, url, n, turns, times) for n in range(conversations)))
        return times

    with served(data_dir) as (url, _, _):
        started = time.perf_counter()
        times = asyncio.run(run(url))
        wall = time.perf_counter() - started
    return {
        "conversations": conversations,
        "requests": len(times),
        "p50_ms": round(statistics.median(times) * 1000, 1),
        "p99_ms": round(percentile(times, 99) * 1000, 1),
        "requests_per_s": round(len(times) / wall, 1),
    }
