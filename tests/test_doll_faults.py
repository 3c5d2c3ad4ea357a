# SPDX-License-Identifier: GPL-3.0-or-later
"""Faults with the doll connected: the server goes down for ten minutes and comes back, and the
doll dies in the middle of his reply (its loop cancelled; its process killed with SIGKILL).

The doll is the real loop on the simulated sound card and mock pins: the ``Rig`` of
tests/test_live_loop.py on simulated time, or `chacha run` as its own process
(tests/fakes/doll_process.py) on real time. The server is the real one, in this process, over
loopback HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT
from fakes.rig import BUTTON_PIN, SAMPLE, Rig, duration_s, run

from device.doll.loop import OFFLINE_LINE
from device.doll.settings import LoopSettings
from device.doll.states import DollState
from inference_server.store import ConversationStore

pytestmark = pytest.mark.slow  # real Vosk

DOLL_PROCESS = Path(__file__).resolve().parent / "fakes" / "doll_process.py"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def forget_the_recording(rig: Rig) -> None:
    """Drop what the simulated card noted (every block played, 96 kB a second even when silent),
    so that the RSS measured is the doll's and the server's, not the test's instrument."""
    rig.fake.forget()


def rss_mb() -> float:
    """This process's resident memory (VmRSS), in MB."""
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def history(data_dir: Path) -> list[tuple[str, str, str]]:
    store = ConversationStore(data_dir / "conversations.sqlite3")
    try:
        return [(t.role, t.source, t.text) for t in store.recent("jinju", 100)]
    finally:
        store.close()


async def failed_turn(rig: Rig, samples) -> float:
    """She presses and talks while the server is down: the offline line, the error light."""
    await rig.press()
    await rig.listening_with_open_ears()
    rig.say(samples)
    thinking = await rig.until_state(DollState.THINKING, 6.0)
    await rig.release()
    await rig.until_state(DollState.ERROR, 10.0)
    await rig.until(lambda: not rig.speaker.playing, "the offline line to finish", 10.0)
    assert rig.doll.server_down and rig.light.state is DollState.ERROR
    return thinking


async def answered_turn(rig: Rig, samples, backend: str = "phrasebook") -> str:
    """She presses and talks; he answers from ``backend``. Returns what the doll heard."""
    await rig.press()
    await rig.listening_with_open_ears()
    rig.say(samples)
    await rig.until_state(DollState.THINKING, 6.0)
    await rig.release()
    await rig.until_state(DollState.SPEAKING, 10.0)
    await rig.until_state(DollState.IDLE)
    assert rig.report.backend == backend
    return rig.report.transcript.text


DOWN_S = 600.0  # the first outage: ten simulated minutes
CYCLES = 4  # outages in all (the later ones shorter), each with failed turns while down


def test_server_down_ten_minutes_with_the_doll_connected_then_up_again(
    start_server, token, tmp_path, transcriber, engine, speech
) -> None:
    data_dir = tmp_path / "data"
    port = _free_port()
    servers = [start_server(data_dir=data_dir, port=port)]
    url = servers[0].url
    # Default retry pacing (1 s doubling to 30 s), as on the doll.
    settings = LoopSettings(earcons=False)
    rss: list[float] = []
    offline_lines: list[float] = []

    async def scenario():
        async with Rig(url, token, transcriber, engine, settings=settings) as rig:
            await answered_turn(rig, speech)  # acknowledged before the outage
            for cycle in range(CYCLES):
                servers[-1].stop()
                # Idle through the outage, with a few turns of hers in it.
                down_s = DOWN_S if cycle == 0 else 60.0
                turns = 3 if cycle == 0 else 2
                for _ in range(turns):
                    rig.fake.input_speed = 200.0  # nothing to hear: let simulated time run fast
                    await rig.sleep(down_s / turns)
                    rig.fake.input_speed = 4.0
                    thinking = await failed_turn(rig, speech)
                    offline_lines.append(duration_s(rig.fake.sounding(thinking)))
                    forget_the_recording(rig)
                    if cycle == 0 and not rss:
                        rss.append(rss_mb())  # after the first failed turn: everything is loaded
                assert rig.task is not None and not rig.task.done()
                servers.append(start_server(data_dir=data_dir, port=port))
                await rig.until_state(DollState.IDLE, 45.0)  # the health check finds it by itself
                assert rig.light.state is DollState.IDLE and not rig.doll.server_down
                await answered_turn(rig, speech)
                forget_the_recording(rig)
                rss.append(rss_mb())
            return rig

    rig = run(scenario())
    print(
        f"\nRSS {rss[0]:.1f} MB after the first failed turn; after each down/up cycle: "
        + ", ".join(f"{value:.1f}" for value in rss[1:])
        + f" MB; growth {rss[-1] - rss[0]:+.1f} MB over {CYCLES} outages, "
        f"{3 + 2 * (CYCLES - 1)} failed turns, {rig.clock.now() / 60:.1f} simulated minutes"
    )
    assert all(seconds > 2.0 for seconds in offline_lines), (OFFLINE_LINE, offline_lines)
    assert rss[-1] - rss[0] < 30.0, rss
    # Nothing acknowledged is lost: the answered turns, and only those, are on record, whole.
    turns = history(data_dir)
    assert [(role, source) for role, source, _ in turns][::2] == [("user", "text")] * (CYCLES + 1), turns
    assert [(role, source) for role, source, _ in turns][1::2] == [("model", "text")] * (CYCLES + 1), turns


def test_the_doll_stopped_dead_mid_reply_leaves_a_truthful_history(
    start_server, token, tmp_path, transcriber, engine, speech, phrasebook
) -> None:
    """The doll's loop task is cancelled while he speaks (in-process: the loop dies, the program
    does not, and may still report where he was cut): her turn is on record, his reply as far as
    it went; a doll started afresh talks on, and the model sees that reply ending in "…". The
    process killed outright is the next test."""
    from conftest import gemini_backend

    from device.bench.fake_gemini import FakeGemini, Reply
    from inference_server.backends.phrasebook import PhrasebookBackend

    data_dir = tmp_path / "data"
    gate = threading.Event()
    settings = LoopSettings(earcons=False)
    with FakeGemini() as fake:
        fake.push(
            Reply.stream(["진주야, 오늘 ", "어땠어? 나는 ", "너 생각만 했지."], gate=gate, gate_after=2)
        )
        server = start_server(gemini_backend(fake.base_url), PhrasebookBackend(phrasebook), data_dir=data_dir)

        async def killed() -> str:
            rig = Rig(server.url, token, transcriber, engine, settings=settings)
            await rig.__aenter__()
            try:
                await rig.press()
                await rig.listening_with_open_ears()
                rig.say(speech)
                await rig.until_state(DollState.THINKING, 6.0)
                await rig.release()
                await rig.until_state(DollState.SPEAKING, 10.0)
                await rig.sleep(0.2)
                assert rig.speaker.playing
                heard = rig.doll.current.transcript.text
                rig.task.cancel()  # the doll dies mid-sentence
                with contextlib.suppress(asyncio.CancelledError):
                    await rig.task
                # what the dying loop still sends (where his reply was cut) lands before we look
                await rig.doll.settle()
            finally:
                rig.button.close()
                rig.light.close()
            await asyncio.sleep(0.5)  # the server notices the hang-up
            gate.set()  # ... and Gemini would have gone on
            await asyncio.sleep(0.5)
            return heard

        heard = run(killed())
        turns = history(data_dir)
        # Cut off either way: "cut" by the server (the stream ended early), or "interrupted" when the
        # dying loop still managed to report what reached the speaker, as on a barge-in.
        assert [role for role, _, _ in turns] == ["user", "model"], turns
        assert turns[0][1] == "text" and turns[1][1] in ("cut", "interrupted"), turns
        assert turns[0][2] == heard
        said = turns[1][2]
        assert said.startswith("진주야,") and "너 생각만" not in said

        fake.push(Reply.stream(["괜찮아, 다시 말해 줘."]))

        async def restarted() -> str:
            async with Rig(server.url, token, transcriber, engine, settings=settings) as rig:
                return await answered_turn(rig, speech, "gemini")

        heard_again = run(restarted())
    assert fake.requests[-1].history == [("user", heard), ("model", f"{said} …"), ("user", heard_again)]
    assert [(role, source) for role, source, _ in history(data_dir)] == [
        ("user", "text"),
        ("model", turns[1][1]),
        ("user", "text"),
        ("model", "text"),
    ]


class DollProcess:
    """`chacha run` as its own process (tests/fakes/doll_process.py), steered line by line."""

    def __init__(self, config: Path, token: str, notify: Path) -> None:
        self.events: queue.Queue[str] = queue.Queue()
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(notify))
        self.notify.settimeout(1.0)
        env = {**os.environ, "CHACHA_API_TOKEN": token, "NOTIFY_SOCKET": str(notify)}
        env.pop("GEMINI_API_KEY", None)
        self.proc = subprocess.Popen(
            [sys.executable, str(DOLL_PROCESS), str(BUTTON_PIN), "--config", str(config), "run"],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.events.put(line.strip())

    def ready(self) -> None:
        """Wait for READY=1 on the systemd notification socket, as systemd would."""
        deadline = time.monotonic() + 180.0  # models load first; a loaded CI machine is slow
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"chacha run exited with {self.proc.returncode}"
            with contextlib.suppress(TimeoutError):
                if b"READY=1" in self.notify.recv(4096):
                    return
        raise AssertionError("chacha run did not report ready")

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def expect(self, event: str, within_s: float = 60.0) -> None:
        got = self.events.get(timeout=within_s)
        assert got == event, (got, event)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self.notify.close()


def _turn(doll: DollProcess) -> None:
    """She presses and says the sample; the doll ends her turn at her silence and answers; she
    lets go of the button once his reply sounds."""
    doll.send("press")
    doll.send(f"say {SAMPLE}")  # after a second of silence: the press has reached the loop
    doll.expect("sound")
    doll.send("release")


def _until(check, what: str, within_s: float = 30.0):
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.mark.realtime
def test_the_doll_killed_as_a_process_mid_reply_loses_nothing_acknowledged(
    start_server, token, tmp_path, phrasebook
) -> None:
    """`chacha run`, a real process on the simulated card and mock pins, is killed with SIGKILL
    while his first sentence sounds: her turn and that sentence stay on record (cut), nothing he
    had not said yet; a doll started afresh talks on, and the model sees the cut reply."""
    from conftest import gemini_backend

    from device.bench.fake_gemini import FakeGemini, Reply
    from inference_server.backends.phrasebook import PhrasebookBackend

    data_dir = tmp_path / "data"
    gate = threading.Event()
    with FakeGemini() as fake:
        fake.push(
            Reply.stream(["진주야, 오늘 ", "어땠어? 나는 ", "너 생각만 했지."], gate=gate, gate_after=2)
        )
        server = start_server(gemini_backend(fake.base_url), PhrasebookBackend(phrasebook), data_dir=data_dir)
        config = tmp_path / "doll.yaml"
        config.write_text(
            f"client:\n  url: {server.url}\n  conversation: jinju\n"
            f"stt:\n  engine: vosk\nloop:\n  earcons: false\n"
            f"hardware:\n  pin_factory: auto\n  button_pin: {BUTTON_PIN}\n  hold_s: 30\n",  # no long press
            encoding="utf-8",
        )
        doll = DollProcess(config, token, tmp_path / "notify")
        try:
            doll.ready()
            _turn(doll)
            time.sleep(0.3)  # his first sentence is sounding
            said_before = _until(lambda: [t for t in history(data_dir) if t[0] == "model"], "his reply")
            doll.proc.send_signal(signal.SIGKILL)
            assert doll.proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            doll.close()
        time.sleep(1.0)  # the server sees the connection drop ...
        gate.set()  # ... and Gemini would have gone on
        time.sleep(1.0)
        turns = history(data_dir)
        assert [role for role, _, _ in turns] == ["user", "model"] and turns[1][1] == "cut", turns
        heard, said = turns[0][2], turns[1][2]
        assert heard and said == said_before[0][2] == "진주야, 오늘 어땠어?", (said_before, turns)

        fake.push(Reply.stream(["괜찮아, 다시 말해 줘."]))
        doll = DollProcess(config, token, tmp_path / "notify-2")
        try:
            doll.ready()
            _turn(doll)
            _until(lambda: len(history(data_dir)) == 4, "the second turn on record")
            doll.proc.send_signal(signal.SIGTERM)  # systemd's stop: a clean exit
            assert doll.proc.wait(timeout=30) == 0
        finally:
            doll.close()
    heard_again = history(data_dir)[2][2]  # the same recording, heard again
    sent = fake.requests[-1].history  # her recording goes along (send_audio: auto), her words noted
    assert sent[:2] == [("user", heard), ("model", f"{said} …")] and sent[2][0] == "user", sent
    assert heard_again in sent[2][1], sent
    assert [(role, source) for role, source, _ in history(data_dir)][1::2] == [
        ("model", "cut"),
        ("model", "text"),
    ]
