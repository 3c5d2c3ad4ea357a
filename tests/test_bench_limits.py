"""`chacha bench limits` with small numbers: each part runs against the real server process and
reports what the limits promise (outcomes only; timings vary with the machine)."""

from __future__ import annotations

import pytest

from device.bench.limits import render, run

pytestmark = pytest.mark.timeout(180)


def test_limits_bench_reports_each_limit_holding(tmp_path):
    report = run(
        tmp_path,
        requests=20,
        connections=8,
        burst=80,
        body_bytes=5_000_000,
        slow=5,
        header_timeout_s=1.0,
        recording_s=120,
    )
    settings = report["settings"]
    assert settings["max_body_bytes"] == 2 * 1024 * 1024 and settings["max_connections"] == 64

    flood = report["flood"]
    assert flood["status"] == {"200": 20} and flood["errors"] == 0
    assert flood["p50_ms"] <= flood["p99_ms"]
    assert flood["server_before"]["rss_mb"] > 0 and flood["server_after"]["rss_mb"] > 0

    burst = report["burst"]
    assert sum(burst["outcomes"].values()) == 80
    assert set(burst["outcomes"]) <= {"200", "503"}, burst["outcomes"]
    assert burst["outcomes"]["503"] >= 80 - 64
    assert burst["afterwards"] == {
        "health": 200,
        "chat": 200,
        "chat_events": burst["afterwards"]["chat_events"],
    }
    assert burst["afterwards"]["chat_events"] > 0

    for key in ("big_body", "big_body_chunked"):
        body = report[key]
        assert body["status"] == 413, body
        assert "2,097,152 bytes" in body["answer_body"]
        assert body["answer_bytes"] < 1000  # one line; nothing of the body comes back
    assert report["big_body_afterwards"]["health"] == 200 and report["big_body_afterwards"]["chat"] == 200

    slow = report["slow_headers"]
    assert slow["header_timeout_s"] == 1.0
    assert slow["still_open"] == 0 and slow["outcomes"] == {"408": 5}
    assert slow["afterwards"]["chat"] == 200

    recording = report["long_recording"]
    assert recording["exit_code"] != 0
    assert "more than stt.max_audio_s (60 s)" in recording["error"]
    assert recording["peak_rss_mb"] > 0

    table = render(report)
    assert "flood" in table and "slow headers" in table and "transcribe" in table
