# SPDX-License-Identifier: GPL-3.0-or-later
"""The `chacha` command line: one module per command family, composing everything else.

It is the top of the house: it imports the doll, the recognisers, the voice tools, the
Telegram bot and the server, and nothing imports it (import-linter checks that).

- ``main``: the parser, logging, and the one-line errors;
- ``server``: `serve`, and the token and client every other command uses;
- ``conversation``: `talk`, `ask`; ``speech``: `transcribe`, `say`;
- ``live``: `run` (the doll) and `test`; ``admin``: `status`, `persona`, `config`;
- ``doctor``, ``bench``, ``voice``, ``telegram``: those commands.
"""

from __future__ import annotations

from device.cli.main import main

__all__ = ["main"]
