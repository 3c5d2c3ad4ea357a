# SPDX-License-Identifier: GPL-3.0-or-later
"""`chacha voice train`: Piper's VITS trainer on the prepared dataset, resumable, with progress.

This drives piper-tts's own training code (``piper.train.vits``: ``VitsDataModule`` for
Piper's preprocessing — espeak-ng phonemes for the voice ``ko``, normalised audio and
spectrograms cached in ``training/cache`` — and ``VitsModel`` for the model) with a Lightning
``Trainer`` of our own instead of ``python -m piper.train``'s LightningCLI, so that:

* the missing Cython alignment search is replaced first (:mod:`tts.voice.piper_patches`);
* no callback waits for ``val_mos`` and nothing is downloaded (``mos_metric=None``);
* ``training/checkpoints/last.ckpt`` is written every ``save_every`` steps, at the end and on
  Ctrl-C, and training continues from it when started again (``best.ckpt`` keeps the lowest
  validation mel loss when there is a validation split);
* progress is printed: step, losses, seconds per step, time left.

A *step* here is one batch (Piper's model takes two optimiser steps per batch, one for the
generator and one for the discriminator; Lightning's ``global_step`` counts both).

A base checkpoint (``--base-checkpoint``) is copied into the new model tensor by tensor where
the shapes match, with a fresh optimiser and the step count at 0: the usual way to fine-tune
one of Piper's published voices onto a new speaker and even a new language.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import resource
import shutil
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tts.voice.errors import VoiceError
from tts.voice.workspace import SAMPLE_RATE, VoiceDir

_LOGGER = logging.getLogger(__name__)

Say = Callable[[str], None]

#: Fewer clips than this cannot be split into training and validation, nor teach anything.
MIN_CLIPS = 10
#: Under this many clips he is warned that the voice will be rough.
FEW_CLIPS = 100
ESPEAK_VOICE = "ko"
SEED = 1234

QUALITIES: dict[str, dict] = {
    # Piper's "x_low" model size (its 16 kHz voices use it); here at 22.05 kHz. For quick trials.
    "x_low": {"hidden_channels": 96, "inter_channels": 96, "filter_channels": 384},
    # Piper's "medium" (the VitsModel defaults): what most published checkpoints are.
    "medium": {},
    # Piper's "high": a larger decoder.
    "high": {
        "resblock": "1",
        "resblock_kernel_sizes": (3, 7, 11),
        "resblock_dilation_sizes": ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        "upsample_rates": (8, 8, 2, 2),
        "upsample_initial_channel": 512,
        "upsample_kernel_sizes": (16, 16, 4, 4),
    },
}


@dataclass
class TrainOptions:
    base_checkpoint: Path | None = None
    accelerator: str = "auto"  # cpu | gpu | auto
    max_steps: int = 20000
    batch_size: int = 16
    quality: str | None = None  # None: the base checkpoint's, the resumed run's, or medium
    save_every: int = 200
    report_every: int = 10
    workers: int = 1
    validation_split: float = 0.05
    test_examples: int = 2
    segment_size: int = 8192


@dataclass
class TrainResult:
    steps: int
    checkpoint: Path
    seconds: float
    seconds_per_step: float | None
    peak_rss_mb: int
    resumed: bool
    interrupted: bool = False


def count_clips(vdir: VoiceDir) -> int:
    """Clips in the dataset whose WAV exists; VoiceError when there is no usable dataset."""
    if not vdir.metadata.is_file():
        raise VoiceError(f"no dataset in {vdir.dataset}: run `chacha voice prepare` first")
    count = 0
    for number, line in enumerate(vdir.metadata.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        clip_id, sep, text = line.partition("|")
        if not sep or not text.strip():
            raise VoiceError(
                f"{vdir.metadata}, line {number}: expected 'id|text' — run `chacha voice prepare` again"
            )
        if (vdir.dataset_wavs / f"{clip_id}.wav").is_file():
            count += 1
    if count < MIN_CLIPS:
        raise VoiceError(
            f"the dataset has {count} clip(s), too few to train on (at least {MIN_CLIPS}; a few hundred, "
            "about 30 minutes, for a usable voice): record or import more, then run `chacha voice prepare`"
        )
    return count


def _fingerprint(vdir: VoiceDir) -> str:
    digest = hashlib.sha1(vdir.metadata.read_bytes())
    for wav in sorted(vdir.dataset_wavs.glob("*.wav")):
        stat = wav.stat()
        digest.update(f"{wav.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def quality_of(hparams: dict) -> str:
    """Which of :data:`QUALITIES` a checkpoint's hyperparameters describe."""
    if int(hparams.get("upsample_initial_channel", 256)) == 512:
        return "high"
    if int(hparams.get("hidden_channels", 192)) == 96:
        return "x_low"
    return "medium"


def _load_checkpoint(path: Path) -> dict:
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # pickle, zip and torch errors of many kinds
        raise VoiceError(
            f"cannot read the checkpoint {path} ({type(exc).__name__}: {exc}): give a Piper training "
            "checkpoint (.ckpt), not an .onnx voice — see docs/voice.md"
        ) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise VoiceError(f"{path} is not a Piper training checkpoint (no state_dict) — see docs/voice.md")
    return checkpoint


def _warm_start(model, checkpoint: dict, path: Path, say: Say) -> None:
    """Copy every tensor of the base whose name and shape match; refuse a base of another size."""
    base = checkpoint["state_dict"]
    own = model.state_dict()
    matched = {k: v for k, v in base.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    generator = [k for k in own if k.startswith("model_g.")]
    copied_generator = sum(1 for k in generator if k in matched)
    if copied_generator < 0.9 * len(generator):
        raise VoiceError(
            f"the base checkpoint {path} does not fit this model ({copied_generator} of {len(generator)} "
            "generator tensors match): pass the --quality of the checkpoint (medium for *-medium voices, "
            "high for *-high) or leave --quality out"
        )
    own.update(matched)
    model.load_state_dict(own)
    say(f"Fine-tuning from {path.name}: {len(matched)} of {len(own)} tensors copied.")


def _accelerator(requested: str) -> str:
    import torch

    if requested == "gpu" and not torch.cuda.is_available():
        raise VoiceError(
            "--accelerator gpu, but PyTorch sees no CUDA GPU (this torch is "
            f"{torch.__version__}): install a CUDA build of torch on a GPU machine, or use --accelerator cpu"
        )
    if requested == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return requested


def _format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


#: Warnings Lightning and torch print on every run that say nothing to him.
_NOISE = (
    r".*weights_only.*",
    r".*LeafSpec.*",
    r".*Total length of `DataLoader` across ranks is zero.*",
    r".*smaller than the logging interval.*",
    r".*pin_memory.*",
    r".*torch.nn.utils.weight_norm.*is deprecated.*",
    r".*does not have many workers.*",
    r".*litlogger.*",
    r".*resuming from a checkpoint that ended before the epoch ended.*",  # mid-epoch resume is fine here
)


def quiet_libraries() -> None:
    """Lightning's banner and the warnings above off; real problems still show."""
    import warnings

    for pattern in _NOISE:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


def peak_rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _callbacks(vdir: VoiceDir, options: TrainOptions, say: Say, with_validation: bool):
    import lightning as L  # noqa: N812 (Lightning's own spelling)
    from lightning.pytorch.callbacks import ModelCheckpoint

    class Progress(L.Callback):
        """Prints step, losses, time per step and time left."""

        def __init__(self) -> None:
            self.times: deque[float] = deque(maxlen=20)
            self.started = 0.0
            self.first_step = 0
            self.last_step = 0

        def on_train_start(self, trainer, pl_module) -> None:
            self.first_step = self.last_step = trainer.global_step // 2
            device = type(trainer.accelerator).__name__.replace("Accelerator", "")
            say(f"Training from step {self.first_step} to {options.max_steps} on {device}.")

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.started = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.times.append(time.perf_counter() - self.started)
            step = self.last_step = trainer.global_step // 2
            done = step - self.first_step
            if done > 3 and step % options.report_every and step != options.max_steps:
                return
            metrics = trainer.callback_metrics
            per_step = sum(self.times) / len(self.times)
            left = (options.max_steps - step) * per_step

            def metric(name: str) -> str:
                value = metrics.get(name)
                return "?" if value is None else f"{float(value):.3f}"

            say(
                f"step {step}/{options.max_steps} · loss_g {metric('loss_g')} · loss_d {metric('loss_d')} · "
                f"mel {metric('train_mel')} · {per_step:.2f} s/step · ETA {_format_duration(left)} · "
                f"RSS {peak_rss_mb()} MB"
            )

    class SaveLast(L.Callback):
        """``last.ckpt`` every ``save_every`` steps, at the end, and when stopped with Ctrl-C."""

        def __init__(self, path: Path) -> None:
            self.path = path

        def save(self, trainer) -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(self.path.stem + ".tmp.ckpt")
            trainer.save_checkpoint(temporary)
            os.replace(temporary, self.path)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if (trainer.global_step // 2) % options.save_every == 0:
                self.save(trainer)

        def on_train_end(self, trainer, pl_module) -> None:
            self.save(trainer)

        def on_exception(self, trainer, pl_module, exception) -> None:
            if isinstance(exception, KeyboardInterrupt) and trainer.global_step > 0:
                say("Stopping: saving the last checkpoint…")
                self.save(trainer)

    callbacks = [Progress(), SaveLast(vdir.last_checkpoint)]
    if with_validation:
        callbacks.append(
            ModelCheckpoint(
                dirpath=vdir.checkpoints,
                filename="best",
                monitor="val_mel",
                mode="min",
                save_top_k=1,
                save_last=False,
                auto_insert_metric_name=False,
                enable_version_counter=False,
            )
        )
    return callbacks


def train_voice(vdir: VoiceDir, options: TrainOptions, *, say: Say = print) -> TrainResult:
    """Train (or go on training) until ``options.max_steps``; returns where the checkpoint is."""
    if options.base_checkpoint is not None and not options.base_checkpoint.is_file():
        raise VoiceError(
            f"base checkpoint not found: {options.base_checkpoint} — download one of Piper's checkpoints "
            "(docs/voice.md says where), or leave out --base-checkpoint to train from scratch"
        )
    clips = count_clips(vdir)
    if options.quality is not None and options.quality not in QUALITIES:
        raise VoiceError(f"unknown quality {options.quality!r}: use one of {', '.join(QUALITIES)}")
    if options.max_steps < 1 or options.batch_size < 1 or options.save_every < 1:
        raise VoiceError("--max-steps, --batch-size and --save-every must be at least 1")
    try:
        import lightning as L  # noqa: N812
        from lightning.pytorch.loggers import TensorBoardLogger
        from piper.train.vits.dataset import VitsDataModule
        from piper.train.vits.lightning import VitsModel
    except ImportError as exc:
        raise VoiceError(
            f"the voice trainer is not installed ({exc}): run `pip install -e '.[voice-train]'` "
            "(on a machine without a GPU first `pip install torch==2.13.0`, the CPU build)"
        ) from None

    from tts.voice.piper_patches import install_monotonic_align

    install_monotonic_align()
    quiet_libraries()
    accelerator = _accelerator(options.accelerator)

    vdir.training.mkdir(parents=True, exist_ok=True)
    settings_path = vdir.training / "settings.json"
    try:
        stored = json.loads(settings_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = {}
    resume = vdir.last_checkpoint.is_file()
    resume_step = 0
    if resume:
        resumed_from = _load_checkpoint(vdir.last_checkpoint)
        resume_step = int(resumed_from.get("global_step", 0)) // 2
        quality = stored.get("quality") or quality_of(resumed_from.get("hyper_parameters", {}))
        if options.quality is not None and options.quality != quality:
            raise VoiceError(
                f"{vdir.training} holds a '{quality}' run; --quality {options.quality} cannot continue it: "
                f"leave --quality out, or delete {vdir.training} to start over"
            )
        del resumed_from
        if resume_step >= options.max_steps:
            say(
                f"Already trained {resume_step} steps (--max-steps {options.max_steps}): "
                "raise --max-steps to train longer, or go on with `chacha voice export`."
            )
            return TrainResult(resume_step, vdir.last_checkpoint, 0.0, None, peak_rss_mb(), True)
        if options.base_checkpoint is not None:
            say(f"Continuing the run in {vdir.training}; --base-checkpoint is only used for a new run.")
    base = None
    if not resume and options.base_checkpoint is not None:
        base = _load_checkpoint(options.base_checkpoint)
        base_quality = quality_of(base.get("hyper_parameters", {}))
        base_rate = int(base.get("hyper_parameters", {}).get("sample_rate", SAMPLE_RATE))
        if base_rate != SAMPLE_RATE:
            raise VoiceError(
                f"the base checkpoint {options.base_checkpoint} is a {base_rate} Hz voice; the dataset is "
                f"{SAMPLE_RATE} Hz: use a medium or high checkpoint (22050 Hz)"
            )
        quality = options.quality or base_quality
    elif not resume:
        quality = options.quality or "medium"

    fingerprint = _fingerprint(vdir)
    cache = vdir.training / "cache"
    if stored.get("dataset") != fingerprint and cache.exists():
        say("The dataset changed since the last run: Piper's cache is rebuilt.")
        shutil.rmtree(cache)
    settings_path.write_text(
        json.dumps({"quality": quality, "dataset": fingerprint, "clips": clips}, indent=1), encoding="utf-8"
    )
    if clips < FEW_CLIPS:
        say(
            f"Only {clips} clips: expect a rough voice "
            "(a few hundred clips, 30 minutes or more, do far better)."
        )

    L.seed_everything(SEED, workers=True, verbose=False)
    validation = options.validation_split if int(clips * options.validation_split) >= 1 else 0.0
    data = VitsDataModule(
        csv_path=vdir.metadata,
        cache_dir=cache,
        espeak_voice=ESPEAK_VOICE,
        config_path=vdir.training / "config.json",
        voice_name="chacha",
        sample_rate=SAMPLE_RATE,
        audio_dir=vdir.dataset_wavs,
        batch_size=options.batch_size,
        num_workers=options.workers,
        validation_split=validation,
        num_test_examples=options.test_examples,
        trim_silence=False,  # prepare trimmed already; what is in dataset/wavs is what is learnt
        segment_size=options.segment_size,
    )
    model = VitsModel(
        batch_size=options.batch_size,
        sample_rate=SAMPLE_RATE,
        num_symbols=data.num_symbols,
        num_speakers=1,
        segment_size=options.segment_size,
        mos_metric=None,  # Piper's default "utmos" fetches a model with torch.hub
        **QUALITIES[quality],
    )
    if base is not None:
        _warm_start(model, base, options.base_checkpoint, say)
        del base

    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        max_steps=2 * options.max_steps,  # two optimiser steps per batch
        max_epochs=-1,
        callbacks=_callbacks(vdir, options, say, with_validation=validation > 0),
        logger=TensorBoardLogger(str(vdir.training), name="logs"),
        enable_checkpointing=validation > 0,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=min(50, max(1, options.report_every)),
        default_root_dir=str(vdir.training),
    )
    say(
        f"{clips} clips · quality {quality} · batch {options.batch_size} · {accelerator} · "
        + (f"continuing from step {resume_step}" if resume else "new run")
        + f" · checkpoints in {vdir.checkpoints}"
    )
    started = time.perf_counter()
    interrupted = False
    try:
        trainer.fit(model, datamodule=data, ckpt_path=str(vdir.last_checkpoint) if resume else None)
    except SystemExit:  # Lightning's answer to Ctrl-C, after on_exception saved last.ckpt
        interrupted = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
    except (RuntimeError, ValueError, AssertionError) as exc:
        message = " ".join(str(exc).split())[:300]
        hint = "lower --batch-size" if "out of memory" in message.lower() else "run with --debug for details"
        raise VoiceError(f"training failed ({type(exc).__name__}: {message}): {hint}") from exc
    elapsed = time.perf_counter() - started
    steps = trainer.global_step // 2
    done = steps - resume_step
    result = TrainResult(
        steps=steps,
        checkpoint=vdir.last_checkpoint,
        seconds=elapsed,
        seconds_per_step=elapsed / done if done > 0 else None,
        peak_rss_mb=peak_rss_mb(),
        resumed=resume,
        interrupted=interrupted,
    )
    if interrupted:
        say(f"Stopped at step {steps}; run `chacha voice train` again to go on from {vdir.last_checkpoint}.")
    else:
        say(
            f"Trained to step {steps} in {_format_duration(elapsed)} (peak memory {result.peak_rss_mb} MB). "
            f"Checkpoint: {vdir.last_checkpoint}. Next: `chacha voice export`."
        )
    return result
