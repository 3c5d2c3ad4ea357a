# SPDX-License-Identifier: GPL-3.0-or-later
"""The command line's own error: a problem with a command's input."""

from __future__ import annotations


class CommandError(Exception):
    """A user-facing problem with a command's input; the message says what to do."""
