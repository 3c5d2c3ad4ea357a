# SPDX-License-Identifier: GPL-3.0-or-later
"""`chacha voice export`: a training checkpoint → ``voice.onnx`` + ``voice.onnx.json`` for Piper.

Does what ``python -m piper.train.export_onnx`` does — load the checkpoint, remove the
decoder's weight normalisation, replace ``forward`` by inference with the three scales as
an input, export with a dynamic batch and phoneme length — but with the legacy TorchScript
exporter (``dynamo=False``): piper-tts 1.8.0's script leaves the choice to torch, whose
default in 2.13 is the dynamo exporter, which needs ``onnxscript`` (not installed by
piper-tts) and is not what Piper's voices are made with. The config
Piper's preprocessing wrote (``training/config.json``: sample rate, espeak voice ``ko``,
phoneme map) goes beside the model as ``voice.onnx.json``. The exported voice is then loaded
with Piper and made to say one sentence, so a broken export fails here and not on the doll.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tts.voice.errors import VoiceError
from tts.voice.workspace import VoiceDir

OPSET = 15
SEED_FOR_EXPORT = 1234
CHECK_SENTENCE = "안녕, 나 차차야."
Say = Callable[[str], None]


@dataclass
class ExportResult:
    onnx: Path
    config: Path
    sample_rate: int
    size_mb: float


def export_voice(
    vdir: VoiceDir,
    *,
    checkpoint: Path | None = None,
    output: Path | None = None,
    say: Say = print,
) -> ExportResult:
    checkpoint = checkpoint or vdir.last_checkpoint
    output = output or vdir.onnx
    if not checkpoint.is_file():
        raise VoiceError(
            f"no checkpoint at {checkpoint}: train first with `chacha voice train` "
            "(or give --checkpoint PATH)"
        )
    config_source = vdir.training / "config.json"
    if not config_source.is_file():
        raise VoiceError(
            f"{config_source} is missing (Piper's preprocessing writes it when training starts): "
            "run `chacha voice train` on this folder first"
        )
    try:
        import torch
        from piper.train.vits.lightning import VitsModel
    except ImportError as exc:
        raise VoiceError(
            f"the voice trainer is not installed ({exc}): run `pip install -e '.[voice-train]'`"
        ) from None

    import warnings

    from tts.voice.train import quiet_libraries

    quiet_libraries()
    try:
        model = VitsModel.load_from_checkpoint(str(checkpoint), map_location="cpu", weights_only=False)
    except Exception as exc:  # pickle, torch and Lightning raise many kinds
        raise VoiceError(
            f"cannot load {checkpoint} ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}): "
            "give a checkpoint written by `chacha voice train`"
        ) from None
    generator = model.model_g
    generator.eval()
    with torch.no_grad():
        generator.dec.remove_weight_norm()

    def infer(text, text_lengths, scales, sid=None):
        audio = generator.infer(
            text,
            text_lengths,
            noise_scale=scales[0],
            length_scale=scales[1],
            noise_scale_w=scales[2],
            sid=sid,
        )[0]
        return audio.unsqueeze(1)

    generator.forward = infer
    torch.manual_seed(SEED_FOR_EXPORT)
    phonemes = torch.randint(low=0, high=generator.n_vocab, size=(1, 50), dtype=torch.long)
    lengths = torch.LongTensor([phonemes.size(1)])
    scales = torch.FloatTensor([0.667, 1.0, 0.8])
    sid = torch.LongTensor([0]) if generator.n_speakers > 1 else None

    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(output.stem + ".tmp.onnx")
    say(f"Exporting {checkpoint.name} to {output} …")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            for category in (torch.jit.TracerWarning, DeprecationWarning, UserWarning):
                warnings.simplefilter("ignore", category=category)  # the tracer's chatter
            torch.onnx.export(
                generator,
                (phonemes, lengths, scales, sid),
                str(temporary),
                opset_version=OPSET,
                input_names=["input", "input_lengths", "scales", "sid"],
                output_names=["output"],
                dynamic_axes={
                    "input": {0: "batch_size", 1: "phonemes"},
                    "input_lengths": {0: "batch_size"},
                    "output": {0: "batch_size", 2: "time"},
                },
                dynamo=False,
            )
    except Exception as exc:
        temporary.unlink(missing_ok=True)
        raise VoiceError(
            f"ONNX export failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}): "
            "run with --debug and report it"
        ) from None
    os.replace(temporary, output)

    config = json.loads(config_source.read_text(encoding="utf-8"))
    config.setdefault("dataset", "chacha")
    config.setdefault("language", {"code": "ko_KR"})
    config_path = output.with_name(output.name + ".json")
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    sample_rate = int(config["audio"]["sample_rate"])
    _check_voice(output, config_path)
    result = ExportResult(output, config_path, sample_rate, output.stat().st_size / 1e6)
    say(
        f"Voice: {output} ({result.size_mb:.0f} MB, {sample_rate} Hz) and {config_path.name}. "
        "Next: `chacha voice install`."
    )
    return result


def _check_voice(model: Path, config: Path) -> None:
    """Load the exported voice with the project's Piper engine and have it say one sentence."""
    from tts.engines import create_engine
    from tts.errors import TTSError
    from tts.settings import PiperSettings, TTSSettings

    try:
        engine = create_engine(TTSSettings(engine="piper", piper=PiperSettings(model=model, config=config)))
        audio = engine.synthesize_sentence(CHECK_SENTENCE)
    except TTSError as exc:
        raise VoiceError(f"the exported voice does not work: {exc}") from None
    if len(audio.samples) == 0:
        raise VoiceError(f"the exported voice {model} produced no audio for {CHECK_SENTENCE!r}: export again")
