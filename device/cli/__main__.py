# SPDX-License-Identifier: GPL-3.0-or-later
"""`python -m device.cli` is `chacha`."""

from device.cli.main import main

raise SystemExit(main())
