# SPDX-License-Identifier: GPL-3.0-or-later
"""The doll's echo canceller: what the speaker plays, taken out of what the microphone hears.

:class:`EchoCanceller` runs WebRTC's AEC3 (``AudioProcessingModule`` in the ``livekit`` wheel,
which has x86-64 and aarch64 builds) on the asyncio loop, block by block, as the microphone's
blocks arrive (``Microphone.clean_with``). Its far-end reference is the speaker's exact output
(``Speaker.reference()``: every block the card was handed, silence and volume included),
resampled to the microphone's rate. AEC3 finds the delay between the two itself (the card's
buffers and the room's path); it needs about a second of his voice to converge.

Why AEC3 and not speexdsp: measured on the simulated room (docs/conversation.md), AEC3 took out
33–40 dB of echo with delays of 10–100 ms and RT60 up to 0.6 s for 2–3 % of one core here, and it
comes as a maintained wheel for both machines; speexdsp has no wheel for either.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from device.errors import AudioDeviceError

if TYPE_CHECKING:
    from device.doll.audio_io import Listener, Played

_LOGGER = logging.getLogger(__name__)

FRAME_MS = 10  # AEC3 takes exactly 10 ms at a time
_MAX_LEAD_S = 0.1  # the most of the speaker's output kept ahead of the microphone after a gap


class EchoCanceller:
    """Cleans microphone blocks (int16 mono at ``rate``) of the speaker's sound.

    ``speaker`` is the doll's :class:`~device.doll.audio_io.Speaker` (its ``reference()`` is
    subscribed at the first block). Not thread-safe: call :meth:`clean` from the loop only.
    """

    def __init__(self, speaker, rate: int) -> None:
        self.rate = rate
        self._frame = rate * FRAME_MS // 1000
        self._speaker = speaker
        self._apm, self._frame_type = load_apm()
        self.restarts = 0  # fresh starts after a gap
        self._reference: Listener[Played] | None = None
        self._resampler = None  # (the speaker's rate, a soxr stream from it to ours)
        self._far = np.zeros(0, np.int16)  # the speaker's output at our rate, not yet fed
        self._near = np.zeros(0, np.int16)  # microphone samples short of a whole frame
        self._next_position: int | None = None  # the speaker's sample after the last block taken

    def clean(self, block: np.ndarray) -> np.ndarray:
        """``block`` with the speaker's echo taken out. What comes back is as long as the whole
        10 ms frames the blocks so far make up (a block that does not end on a frame waits)."""
        self._take_reference(len(block))
        near = np.concatenate([self._near, np.asarray(block, np.int16).reshape(-1)])
        whole = len(near) - len(near) % self._frame
        out = near[:whole].copy()
        self._near = near[whole:]
        for start in range(0, whole, self._frame):
            self._feed_far()
            frame = self._frame_type(out[start : start + self._frame].tobytes(), self.rate, 1, self._frame)
            self._apm.process_stream(frame)
            out[start : start + self._frame] = np.frombuffer(bytes(frame.data), np.int16)
        return out

    def close(self) -> None:
        if self._reference is not None:
            self._reference.close()
            self._reference = None

    # -- the far end -------------------------------------------------------------------

    def _take_reference(self, block_samples: int) -> None:
        """Move what the speaker played since the last block into the far-end buffer."""
        if self._reference is None:
            self._reference = self._speaker.reference()
        for played in self._reference.read_pending():
            if self._next_position is not None and played.position != self._next_position:
                self._resampler = None  # the speaker's stream was opened again: a fresh start
            self._next_position = played.position + len(played.samples)
            self._far = np.concatenate([self._far, self._resample(played)])
        # After a gap (the stream was closed, so no block was cleaned) the reference piled up:
        # what played then is long gone from the room. Keep only what this block can hear, and
        # start the canceller afresh: AEC3 converges again within a second from a fresh start,
        # where the old one, its alignment lost, sometimes did not within three.
        if len(self._far) > block_samples + round(_MAX_LEAD_S * self.rate):
            self._far = self._far[-block_samples:]
            self._apm, self._frame_type = load_apm()
            self.restarts += 1

    def _resample(self, played: Played) -> np.ndarray:
        samples = np.asarray(played.samples, np.int16)
        if played.rate == self.rate:
            return samples
        if self._resampler is None or self._resampler[0] != played.rate:
            import soxr

            self._resampler = (played.rate, soxr.ResampleStream(played.rate, self.rate, 1, dtype="int16"))
        return self._resampler[1].resample_chunk(samples)

    def _feed_far(self) -> None:
        """One 10 ms frame of the far end for each frame of the microphone (silence when the
        speaker gave less: it was stopped, or is late)."""
        if len(self._far) >= self._frame:
            far, self._far = self._far[: self._frame], self._far[self._frame :]
        else:
            far = np.zeros(self._frame, np.int16)
            far[: len(self._far)] = self._far
            self._far = np.zeros(0, np.int16)
        self._apm.process_reverse_stream(self._frame_type(far.tobytes(), self.rate, 1, self._frame))


def load_apm():
    """A fresh AEC3 (livekit's ``AudioProcessingModule``) and livekit's frame type; a missing
    livekit is an AudioDeviceError that says how to install it or turn voice barge-in off."""
    try:
        from livekit.rtc import AudioFrame, AudioProcessingModule
    except ImportError as exc:
        raise AudioDeviceError(
            f"the echo canceller needs the livekit package ({exc}): install the doll's extra "
            "(`pip install 'chachaping[device]'`), or set loop.barge_in.by: button"
        ) from None
    apm = AudioProcessingModule(echo_cancellation=True, high_pass_filter=True)
    return apm, AudioFrame
