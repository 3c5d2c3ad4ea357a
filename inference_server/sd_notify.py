"""systemd's readiness and watchdog protocol (sd_notify), for `Type=notify` units.

A datagram to the socket systemd names in $NOTIFY_SOCKET; nothing happens when it is unset
(not under systemd). Written here rather than taken from a package: the protocol is one
`sendto`, and the maintained libraries for it pull in systemd's C library.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

_LOGGER = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send e.g. "READY=1" or "WATCHDOG=1"; True when systemd was told."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
    except OSError as exc:
        _LOGGER.warning("cannot notify systemd (%s): %s", message, exc)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half of systemd's WatchdogSec for this process, or None when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000 / 2
    except ValueError:
        return None


async def keep_alive() -> None:
    """Ping the watchdog from the event loop: if the loop hangs, the pings stop and systemd restarts us."""
    interval = watchdog_interval_s()
    if interval is None:
        return
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def ready(status: str) -> None:
    notify(f"READY=1\nSTATUS={status}")
