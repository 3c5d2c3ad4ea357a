# SPDX-License-Identifier: GPL-3.0-or-later
"""Cloning 차차's voice into a Piper voice: `chacha voice record|import|prepare|train|export|install`.

Importing this package loads nothing heavy: PyTorch and Piper's trainer are imported only by
`train` and `export` (the ``voice-train`` extra), the sound card only by `record`.
See docs/voice.md.
"""
