"""The one error type of the speech package."""

from __future__ import annotations


class TTSError(Exception):
    """Speech synthesis cannot go on.

    The message is one line that says what is wrong and what to do about it, so it can be
    shown to whoever runs the doll as it is.
    """
