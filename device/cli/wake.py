# SPDX-License-Identifier: GPL-3.0-or-later
"""`chacha wake enroll|check`: her wake phrase, enrolled from her own recordings and checked.

The recordings are kept in ``server.data_dir``/wake on the doll (``chacha run`` reads them when
``loop.wake.enabled`` is true). See :mod:`device.doll.wake` for how they are matched.
"""

from __future__ import annotations

import logging
from argparse import Namespace
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

_LONGEST_FILE_S = 60.0  # `check` reads recordings up to this long; `enroll` far less
RECORD_S = 2.5
_TRIES_PER_TAKE = 3
"""One take of `chacha wake enroll --record`: she says the phrase once inside it."""


def register(sub) -> None:
    p = sub.add_parser(
        "wake",
        help="her wake phrase: `wake enroll FILE...` (3 to 10 recordings), `wake check FILE...`",
    )
    wake_parsers = p.add_subparsers(dest="wake", required=True, metavar="WHAT")
    e = wake_parsers.add_parser(
        "enroll",
        help="keep 3 to 10 recordings of her saying the phrase (each alone, WAV/FLAC/OGG) "
        "as the doll's wake phrase",
    )
    e.add_argument("files", type=Path, nargs="*", metavar="FILE")
    e.add_argument(
        "--record",
        type=int,
        metavar="N",
        help=f"record N takes from the doll's microphone instead ({RECORD_S:g} s each, after Enter)",
    )
    e.add_argument("--phrase", default="차차야", help="what the recordings say (default 차차야)")
    e.set_defaults(func=enroll)
    c = wake_parsers.add_parser(
        "check", help="would these recordings wake the doll? (the phrase should; other speech should not)"
    )
    c.add_argument("files", type=Path, nargs="+", metavar="FILE")
    c.set_defaults(func=check)


def wake_dir(config) -> Path:
    from device.doll.wake import WAKE_DIR

    return config.server.data_dir / WAKE_DIR


def enroll(args: Namespace, config) -> int:
    from device.cli.errors import CommandError
    from device.doll.wake import RATE, Enrolment, WakeEnrolmentError, leave_one_out, prepare_clips

    if bool(args.files) == bool(args.record):
        raise CommandError("give the recordings (FILE...) or --record N, one of the two")
    if args.record:
        recordings = _record(config, args.record)
    else:
        recordings = [(str(path), _read(path, max_s=_LONGEST_FILE_S)) for path in args.files]
    try:
        clips = prepare_clips(recordings)
    except WakeEnrolmentError as exc:
        raise CommandError(f"{exc} (nothing was changed)") from None
    threshold = config.loop.wake.threshold
    distances = leave_one_out(clips, threshold)
    folder = wake_dir(config)
    Enrolment(folder, args.phrase, tuple(clips)).save()
    print(f"Enrolled {len(clips)} recordings of {args.phrase!r} in {folder}.")
    print(f"Each, against the others (distance; it wakes below loop.wake.threshold = {threshold:g}):")
    for (name, _), clip, distance in zip(recordings, clips, distances, strict=True):
        verdict = (
            "ok" if distance < threshold else "would NOT wake: say it again the way she says it to the doll"
        )
        print(f"  {name}: {len(clip) / RATE:.2f} s, {distance:.3f}  {verdict}")
    missed = sum(d >= threshold for d in distances)
    if missed:
        print(f"{missed} of {len(clips)} did not match the others: enrol again with recordings said alike.")
    if not config.loop.wake.enabled:
        print("The wake phrase is off: set loop.wake.enabled: true and restart `chacha run` to use it.")
    else:
        print("Restart the doll (`sudo systemctl restart chachaping-doll`) to use these recordings.")
    return 0


def _record(config, takes: int, ask=None) -> list[tuple[str, object]]:
    """``takes`` recordings of her saying the phrase, from the doll's microphone, at 16 kHz."""
    import asyncio

    import soxr

    from device.cli.errors import CommandError
    from device.cli.live import capture
    from device.doll.wake import MAX_CLIPS, MIN_CLIPS, RATE, WakeEnrolmentError, prepare_clip

    if not MIN_CLIPS <= takes <= MAX_CLIPS:
        raise CommandError(f"--record {takes}: record {MIN_CLIPS} to {MAX_CLIPS} takes")
    ask = ask or input
    rate = config.audio.capture_rate
    print(
        f"{takes} takes of {RECORD_S:g} s. Hold the doll as she will, and say the phrase once in each "
        "take. (The doll's own service holds the microphone: stop it first, "
        "`sudo systemctl stop chachaping-doll`.)"
    )
    recordings = []
    number, failed = 1, 0
    while number <= takes:
        ask(f"take {number} of {takes}: press Enter, then say it")
        print("  listening...", flush=True)
        samples = asyncio.run(capture(config, RECORD_S))
        if rate != RATE:
            samples = soxr.resample(samples, rate, RATE).astype(samples.dtype)
        name = f"take {number}"
        try:
            prepare_clip(name, samples)
        except WakeEnrolmentError as exc:  # this take only: say it again, the others are kept
            failed += 1
            if failed == _TRIES_PER_TAKE:
                raise CommandError(
                    f"{exc}, {failed} times: check the microphone with `chacha test mic` "
                    "(nothing was changed)"
                ) from None
            print(f"  {exc}; once more:")
            continue
        recordings.append((name, samples))
        number, failed = number + 1, 0
    return recordings


def check(args: Namespace, config) -> int:
    from device.cli.errors import CommandError
    from device.doll.vad import create_vad
    from device.doll.wake import RATE, Enrolment, WakeDetector, WakeEnrolmentError

    try:
        enrolment = Enrolment.load(wake_dir(config))
    except WakeEnrolmentError as exc:
        raise CommandError(str(exc)) from None
    templates = enrolment.templates()
    threshold = config.loop.wake.threshold
    vad = create_vad(config.loop, RATE)
    print(f"Wake phrase {enrolment.phrase!r}, {len(templates)} recordings, threshold {threshold:g}:")
    for path in args.files:
        samples = _read(path, max_s=_LONGEST_FILE_S)
        detector = WakeDetector(templates, threshold, speech=vad)
        woke = [heard.at_s for heard in detector.scan(samples)]
        where = ", ".join(f"{at:.2f} s" for at in woke)
        verdict = f"wakes at {where}" if woke else "does not wake"
        print(f"  {path}: {verdict} (closest {detector.best:.3f})")
    return 0


def _read(path: Path, *, max_s: float):
    from device.audio import load_audio

    return load_audio(path, sample_rate=16000, max_s=max_s)
