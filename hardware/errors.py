# SPDX-License-Identifier: GPL-3.0-or-later
"""The one error the hardware package raises to a person."""

from __future__ import annotations


class HardwareError(Exception):
    """GPIO cannot be used: no GPIO on this machine, a pin in use, a missing library, ...

    The message is one line that says what is wrong and what to do; any newlines or runs
    of whitespace (from a library's own error text) are collapsed to one space.
    """

    def __init__(self, message: object) -> None:
        super().__init__(" ".join(str(message).split()))
