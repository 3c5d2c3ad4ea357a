# SPDX-License-Identifier: GPL-3.0-or-later
"""The one error type of the voice-cloning pipeline."""

from __future__ import annotations


class VoiceError(Exception):
    """A step of `chacha voice …` cannot go on; the message says what is wrong and what to do.

    The message is always one line: newlines and runs of spaces (from a library's error
    text, say) collapse to one space.
    """

    def __init__(self, message: object) -> None:
        super().__init__(" ".join(str(message).split()))


class UnreadableAudio(VoiceError):  # noqa: N818 (a VoiceError, named for what it says)
    """A recording the audio loader given to a step cannot read (the step skips it)."""
