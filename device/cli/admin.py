"""`chacha status` and `chacha persona …`: the developer's view of the server, over SSH."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import tempfile
from argparse import Namespace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from device.config import ChachaConfig

if TYPE_CHECKING:
    from inference_server.api import BreakerStatus, DiskStatus


def _with_client(config: ChachaConfig, job):
    """Run `job(client)` against the configured server, or one started in this process."""
    from device.cli.server import server_client

    async def run():
        return await job(client)

    with server_client(config) as client:
        return asyncio.run(run())


# --- status ------------------------------------------------------------------------------


def _doll_line(config: ChachaConfig) -> str:
    """Whether the doll listens by itself, as its kept state says."""
    from device.doll.mute import STATE_FILE, read_muted

    if read_muted(config.server.data_dir / STATE_FILE):
        return "muted: it listens only while the button is held (a long press unmutes it)"
    heard = ["while the button is held"]
    if config.loop.follow_up_s > 0:
        heard.append(f"{config.loop.follow_up_s:g} s after each reply (loop.follow_up_s)")
    if config.loop.wake.enabled:
        heard.append(f"after her wake phrase ({_wake_words(config)})")
    if len(heard) == 1:
        return "listens while the button is held (loop.follow_up_s: 0)"
    return "listens " + ", ".join(heard[:-1]) + ", and " + heard[-1]


def _wake_words(config: ChachaConfig) -> str:
    """The enrolled wake phrase, as `chacha status` shows it; or what is wrong with it."""
    from device.cli.wake import wake_dir
    from device.doll.wake import Enrolment, WakeEnrolmentError

    try:
        enrolment = Enrolment.load(wake_dir(config))
    except WakeEnrolmentError:
        return "none enrolled: `chacha wake enroll`"
    return f"{enrolment.phrase!r}, matched on the doll"


def status(args: Namespace, config: ChachaConfig) -> int:
    health = _with_client(config, lambda client: client.health())
    if args.json:
        print(json.dumps(health.model_dump(mode="json"), ensure_ascii=False))
        return 0
    where = config.client.url or "in-process (client.url is not set)"
    print(f"Server:   {where} · version {health.version} · {health.status}")
    if health.reason:
        print(f"          {health.reason}")
    if health.disk is not None:
        print(f"Disk:     {disk_text(health.disk)}")
    if health.clock is not None and (not health.clock.synchronized or health.clock.behind_s):
        behind = (
            f"; the system clock reads {health.clock.behind_s:.0f} s before the newest stamp, which is used"
            if health.clock.behind_s
            else ""
        )
        print(f"Clock:    NTP has not set the time yet{behind} (docs/reliability.md)")
    print(f"Answers:  {health.backend}  (the first backend that can answer now)")
    print(f"Doll:     {_doll_line(config)}")
    if health.memory is not None:
        waiting = health.memory.waiting_sessions
        last = f" · last: {health.memory.last_outcome}" if health.memory.last_outcome else ""
        print(
            f"Memory:   {health.memory.memories} memories, {waiting} session(s) waiting for reflection{last}"
        )
    for backend in health.backends:
        state = "ready" if backend.available else f"off — {backend.reason}"
        if backend.available and backend.breaker is not None:
            state += f" · {breaker_text(backend.breaker)}"
        print(f"  {backend.name:<11} {state}")
        quota = backend.quota
        if quota:
            cooldown = (
                f"cooling down {quota.cooldown_s:.0f} s ({quota.cooldown_reason})"
                if quota.cooldown_s
                else "no cooldown"
            )
            hours, rest = divmod(int(quota.resets_in_s), 3600)
            print(
                f"  {'':<11} {quota.model}: {quota.left_today} of {quota.requests_per_day} "
                f"requests left today ({quota.left_today_for_telegram} for Telegram), "
                f"resets in {hours} h {rest // 60} min"
            )
            print(
                f"  {'':<11} this minute: {quota.requests_last_minute}/{quota.requests_per_minute} "
                f"requests, {quota.tokens_last_minute}/{quota.tokens_per_minute} tokens · {cooldown}"
            )
    return 0


def disk_text(disk: DiskStatus) -> str:
    """The data folder's disk in one line: free space against server.min_free_mb, and what to do
    when it counts as full."""
    free = "free space unknown" if disk.free_bytes < 0 else f"{disk.free_bytes / 2**20:.1f} MB free"
    line = f"{free} under {disk.path} (server.min_free_mb: {disk.min_free_bytes / 2**20:g} MB)"
    if disk.full:
        line += " · FULL: nothing new is stored and 차차 says his notebook is full; free space there"
    return line


def breaker_text(breaker: BreakerStatus) -> str:
    """A backend's circuit breaker in a few words: closed, open until …, or half-open."""
    if breaker.state == "closed":
        failed = f" ({breaker.failures} failure(s) in a row)" if breaker.failures else ""
        return f"breaker closed{failed}"
    if breaker.state == "open" and breaker.until is not None:
        until = datetime.fromtimestamp(breaker.until).strftime("%H:%M:%S")
        return f"breaker open until {until} (in {breaker.retry_in_s:.0f} s) after {breaker.last_failure}"
    if breaker.state == "half_open":
        return f"breaker half-open: the next turn starts a probe (after {breaker.last_failure})"
    return f"breaker {breaker.state}"


# --- persona -----------------------------------------------------------------------------


def persona(args: Namespace, config: ChachaConfig) -> int:
    from device.cli.errors import CommandError

    if args.action == "show":
        found = _with_client(config, lambda client: client.persona())
        print(f"# {found['path']}")
        print(found["text"], end="" if found["text"].endswith("\n") else "\n")
        return 0
    if args.action == "reload":
        found = _with_client(config, lambda client: client.reload_persona())
        print(f"Reloaded {found['name']}'s persona from {found['path']}.")
        return 0
    if args.action == "set":
        if args.file is None:
            raise CommandError("`chacha persona set` needs a file: chacha persona set my-persona.yaml")
        try:
            text = args.file.read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read {args.file}: {exc.strerror}") from None
        found = _with_client(config, lambda client: client.set_persona(text))
        print(f"Saved {found['name']}'s persona to {found['path']}; it applies from the next turn.")
        return 0
    return _edit(config)


def _edit(config: ChachaConfig) -> int:
    """Open the persona in $EDITOR; save it through the server, which checks it first."""
    from device.cli.errors import CommandError
    from inference_server.api import ServerUnavailable

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "nano"

    async def job(client):
        found = await client.persona()
        with tempfile.NamedTemporaryFile(
            "w", suffix=".yaml", prefix="persona-", delete=False, encoding="utf-8"
        ) as handle:
            handle.write(found["text"])
            draft = Path(handle.name)
        while True:
            try:
                await asyncio.to_thread(subprocess.run, [*shlex.split(editor), str(draft)], check=True)
            except (OSError, subprocess.CalledProcessError) as exc:
                raise CommandError(
                    f"the editor {editor!r} failed ({exc}); set $EDITOR, or use "
                    f"`chacha persona set FILE` — your draft is in {draft}"
                ) from None
            text = draft.read_text(encoding="utf-8")
            if text == found["text"]:
                draft.unlink()
                return "unchanged"
            try:
                saved = await client.set_persona(text)
            except ServerUnavailable as exc:
                answer = input(f"{exc}\nEdit again? [Y/n] ").strip().lower()
                if answer in ("n", "no"):
                    raise CommandError(f"not saved; your draft is in {draft}") from None
                continue
            draft.unlink()
            return f"Saved {saved['name']}'s persona to {saved['path']}; it applies from the next turn."

    print(_with_client(config, job))
    return 0


# --- config ------------------------------------------------------------------------------


def show_config(args: Namespace, config: ChachaConfig) -> int:
    """Check the file, then load what `chacha serve` loads before it listens (with the server's
    own code, so a problem is the server's own one-line error), then print the settings."""
    from inference_server.startup import check_startup

    found = check_startup(config.server, config.llm, config.persona, config.memory)
    source = args.config_source or "built-in defaults (no chacha.yaml found)"
    print(f"# configuration from {source}; it is valid, and what the server loads at start loads:")
    for part, detail in found:
        print(f"#   {part}: {detail}")
    print(yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True, sort_keys=False))
    return 0
