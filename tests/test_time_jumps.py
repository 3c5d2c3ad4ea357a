"""A Raspberry Pi has no real-time clock: the server's time when the clock jumps.

Every clock here is injected (wall time, monotonic time, whether NTP has synchronised): no
test waits for real time to pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from inference_server.quota import QuotaLedger, pacific_day
from inference_server.settings import QuotaSettings
from inference_server.shared.clock import CLOCK_FLOOR, TRUST_SYNCED_S, WallClock, clock_synchronized
from inference_server.store import ConversationStore

REAL = 1_796_400_000.0  # 2026-12-04, a time after the release floor
BACK_S = 820_799_908.7  # how far back the probe's boot clock was (2000-11-…)
LIMITS = QuotaSettings(requests_per_minute=5, requests_per_day=20, tokens_per_minute=250_000)


class Clocks:
    """The machine's clocks as a test sets them: the wall clock jumps, the monotonic one runs."""

    def __init__(self, wall: float, *, synced: bool | None = True) -> None:
        self.wall = wall
        self.mono = 500.0
        self.synced = synced

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def clock(self, **kw) -> WallClock:
        return WallClock(
            wall=lambda: self.wall, monotonic=lambda: self.mono, synchronized=lambda: self.synced, **kw
        )


def _ledger(path: Path, clocks: Clocks, clock: WallClock, boot: str = "boot-1") -> QuotaLedger:
    ledger = QuotaLedger(path, clock=clock, synchronized=clock.synchronized, boot=boot)
    clock.seen(ledger.newest())
    return ledger


def test_the_clock_never_reads_before_what_is_stored_and_runs_on_from_there():
    clocks = Clocks(REAL - BACK_S, synced=False)
    clock = clocks.clock()
    clock.seen(REAL)
    assert clock() == REAL and clock.behind_s == pytest.approx(BACK_S)
    clocks.advance(30)
    assert clock() == REAL + 30  # the monotonic clock carries it on
    clocks.wall = REAL + 3600  # NTP sets the time
    assert clock() == REAL + 3600 and clock.behind_s == 0.0


def test_the_release_floor_holds_when_nothing_is_stored_yet():
    clocks = Clocks(0.0, synced=False)  # 1970: a Pi whose clock was never set
    assert clocks.clock()() == CLOCK_FLOOR


def test_a_synchronised_clock_is_believed_over_stamps_from_a_clock_that_ran_ahead():
    clocks = Clocks(REAL, synced=True)
    clock = clocks.clock()
    clock.seen(REAL + 10 * 86_400)  # stamps written while the clock was ten days ahead
    assert clock() == REAL
    clocks.synced = False
    clock.seen(REAL + 10 * 86_400)
    assert clock() == REAL + 10 * 86_400  # unsynchronised, the stored stamps win
    clocks.synced = True
    clocks.advance(1)
    assert clock() == REAL + 1 and TRUST_SYNCED_S < 10 * 86_400


def test_a_clock_set_back_at_boot_does_not_poison_the_per_minute_window(tmp_path: Path):
    """The probe's failure: stamps "in the future" filled the window for 820799908.7 s."""
    clocks = Clocks(REAL)
    ledger = _ledger(tmp_path / "quota.sqlite3", clocks, clocks.clock())
    for _ in range(5):
        assert ledger.admit("flash", LIMITS, channel="doll", tokens=10).admitted
    ledger.close()

    clocks.advance(120)  # a reboot two minutes later, the wall clock far in the past, no NTP yet
    clocks.wall -= BACK_S
    clocks.synced = False
    clock = clocks.clock()
    ledger = _ledger(tmp_path / "quota.sqlite3", clocks, clock, boot="boot-2")
    # It cannot know how long the reboot took: the newest request is "now", so the window is
    # full for at most a minute, counted on the monotonic clock, not for 26 years.
    admission = ledger.admit("flash", LIMITS, channel="doll", tokens=10)
    assert not admission.admitted and 0 < admission.wait_s <= 60.0
    clocks.advance(admission.wait_s + 0.1)
    admission = ledger.admit("flash", LIMITS, channel="doll", tokens=10)
    assert admission.admitted, admission.reason
    status = ledger.status("flash", LIMITS)
    assert status.requests_today == 6 and status.requests_last_minute == 1
    assert pacific_day(clock()) == pacific_day(REAL)  # never a day in the past


def test_requests_made_before_ntp_are_charged_to_the_day_ntp_then_says(tmp_path: Path):
    clocks = Clocks(REAL)
    ledger = _ledger(tmp_path / "quota.sqlite3", clocks, clocks.clock())
    assert ledger.admit("flash", LIMITS, channel="doll", tokens=10).admitted
    ledger.close()

    # Off for three days; at boot the clock reads the time saved at shutdown, and NTP is away.
    clocks.mono += 3 * 86_400
    clocks.synced = False
    clock = clocks.clock()
    ledger = _ledger(tmp_path / "quota.sqlite3", clocks, clock, boot="boot-2")
    for _ in range(3):
        assert ledger.admit("flash", LIMITS, channel="doll", tokens=10).admitted
        clocks.advance(20)
    assert ledger.status("flash", LIMITS).requests_today == 4  # all on the saved day, for now

    clocks.wall += 3 * 86_400  # NTP answers: it is three days later
    clocks.synced = True
    status = ledger.status("flash", LIMITS)
    assert status.requests_today == 3  # this boot's requests moved to today; the old one stays
    assert ledger.admit("flash", LIMITS, channel="doll", tokens=10).admitted
    assert ledger.status("flash", LIMITS).requests_today == 4


def test_a_request_from_another_boot_is_not_moved(tmp_path: Path):
    clocks = Clocks(REAL, synced=False)
    ledger = _ledger(tmp_path / "quota.sqlite3", clocks, clocks.clock(), boot="boot-1")
    assert ledger.admit("flash", LIMITS, channel="doll", tokens=10).admitted
    ledger.close()
    clocks.advance(5 * 86_400)
    clocks.synced = True
    ledger = _ledger(tmp_path / "quota.sqlite3", clocks, clocks.clock(), boot="boot-2")
    assert ledger.status("flash", LIMITS).requests_today == 0


def test_stamps_and_cooldowns_from_a_clock_that_ran_ahead_do_not_block_the_model(tmp_path: Path):
    clocks = Clocks(REAL + 30 * 86_400, synced=False)  # a month ahead
    ledger = _ledger(tmp_path / "quota.sqlite3", clocks, clocks.clock())
    for _ in range(5):
        assert ledger.admit("flash", LIMITS, channel="doll", tokens=10).admitted
    ledger.cool_down("flash", LIMITS, retry_after_s=None, reason="RESOURCE_EXHAUSTED per day")
    ledger.close()

    clocks.wall = REAL  # NTP sets it right
    clocks.synced = True
    ledger = _ledger(tmp_path / "quota.sqlite3", clocks, clocks.clock(), boot="boot-2")
    admission = ledger.admit("flash", LIMITS, channel="doll", tokens=10)
    assert admission.admitted, admission.reason
    assert ledger.status("flash", LIMITS).cooldown_s == 0.0


def test_turns_stored_while_the_clock_is_wrong_are_not_stamped_in_the_past(tmp_path: Path):
    clocks = Clocks(REAL)
    store = ConversationStore(tmp_path / "conversations.sqlite3", clock=clocks.clock())
    store.add("jinju", "user", "안녕", channel="doll")
    store.close()

    clocks.advance(60)
    clocks.wall -= BACK_S
    clocks.synced = False
    clock = clocks.clock()
    store = ConversationStore(tmp_path / "conversations.sqlite3", clock=clock)
    clock.seen(store.newest())
    turn_id = store.add("jinju", "user", "나 왔어", channel="doll")
    (turn,) = [t for t in store.recent("jinju", 5) if t.id == turn_id]
    assert turn.created_at >= REAL
    store.close()


def test_ntp_synchronisation_is_read_from_timesyncds_flag(tmp_path: Path):
    flag = tmp_path / "timesync" / "synchronized"
    flag.parent.mkdir()
    assert clock_synchronized(flag) is False  # timesyncd runs, NTP has not answered yet
    flag.touch()
    assert clock_synchronized(flag) is True
    assert clock_synchronized(tmp_path / "no-timesyncd" / "synchronized") in (
        True,
        False,
        None,
    )  # the kernel's


def test_health_and_chacha_status_say_the_clock_is_not_set_yet(start_server, token, tmp_path, capsys):
    import asyncio

    from device.cli.main import main
    from inference_server.api import InferenceClient

    clocks = Clocks(REAL - BACK_S, synced=False)
    clock = clocks.clock()
    clock.seen(REAL)
    server = start_server(wall_clock=clock)
    health = asyncio.run(InferenceClient(server.url, token, timeout_s=10).health())
    assert health.clock is not None and not health.clock.synchronized
    assert health.clock.behind_s == pytest.approx(BACK_S, abs=1.0)

    config = tmp_path / "chacha.yaml"
    config.write_text(f"client:\n  url: {server.url}\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHACHA_API_TOKEN", token)
        assert main(["--config", str(config), "status"]) == 0
    out = capsys.readouterr().out
    assert "Clock:    NTP has not set the time yet; the system clock reads 820799909 s before" in out

    clocks.wall, clocks.synced = REAL + 600, True
    health = asyncio.run(InferenceClient(server.url, token, timeout_s=10).health())
    assert health.clock.synchronized and health.clock.behind_s == 0.0
