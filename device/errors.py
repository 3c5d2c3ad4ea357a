# SPDX-License-Identifier: GPL-3.0-or-later
"""Errors the doll reports to a person.

Every message is one line that says what is wrong and what to do about it, so the
CLI can print ``str(error)`` as it is and the log stays one event per line.
"""

from __future__ import annotations


class STTError(Exception):
    """Speech-to-text cannot go on: a bad model folder, a bad recording, ...

    The message is always a single line: any newlines or runs of whitespace in
    it (for example from a library's error text) are collapsed to one space.
    """

    def __init__(self, message: object) -> None:
        super().__init__(" ".join(str(message).split()))


class AudioError(STTError):
    """The audio given to the doll cannot be used (missing, not audio, empty...).

    A subclass so that callers may tell "your recording is bad" (fix the input)
    apart from "the recogniser is broken" (fix the installation).
    """


class AudioDeviceError(Exception):
    """No sound card, no PortAudio, or a device that refuses the format; says what to do."""
