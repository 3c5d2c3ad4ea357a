# SPDX-License-Identifier: GPL-3.0-or-later
"""The STT accuracy harness, with a fake recogniser (no speech model)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from device.bench.stt import STTBenchReport, evaluate, load_transcripts
from device.errors import STTError
from device.stt.transcript import Transcript

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def _wav(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(round(16000 * seconds), dtype=np.int16), 16000, subtype="PCM_16")


def _folder(tmp_path: Path, tsv: str, *wavs: str) -> Path:
    for name in wavs:
        _wav(tmp_path / name, 1.0)
    (tmp_path / "transcripts.tsv").write_text(tsv, encoding="utf-8")
    return tmp_path


class FakeRecogniser:
    """Says what it was told to say for each file name; counts its calls."""

    def __init__(self, heard: dict[str, Transcript]) -> None:
        self.heard = heard
        self.calls: list[Path] = []

    def __call__(self, path: Path) -> Transcript:
        self.calls.append(path)
        assert path.is_file()
        return self.heard[path.name]


def _transcript(text: str, audio_s: float, elapsed_s: float, latency_s: float, engine: str = "vosk"):
    return Transcript(
        text=text,
        confidence=0.9 if text else 0.0,
        audio_s=audio_s,
        elapsed_s=elapsed_s,
        final_latency_s=latency_s,
        engine=engine,
    )


TSV = "# two recordings\n\na.wav\t그는 이리저리 피하면서 길 한 옆으로 걸어갔다\nsub/b.wav\t가나\n"


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    return _folder(tmp_path, TSV, "a.wav", "sub/b.wav")


@pytest.fixture()
def fake() -> FakeRecogniser:
    return FakeRecogniser(
        {
            "a.wav": _transcript("그 는 디비전 이 피 하면서 기흥 옆으로 걸어갔 다", 4.0, 1.0, 0.2),
            "b.wav": _transcript("가 다", 1.0, 0.5, 0.4),  # 가나 heard as 가다
        }
    )


def test_load_transcripts(folder: Path) -> None:
    assert load_transcripts(folder) == [
        (folder / "a.wav", "그는 이리저리 피하면서 길 한 옆으로 걸어갔다"),
        (folder / "sub" / "b.wav", "가나"),
    ]


def test_load_transcripts_tolerates_bom_crlf_and_spaces(tmp_path: Path) -> None:
    tsv = "\ufeff# comment\r\n   \r\n a.wav \t 가나 \r\n  # indented comment\r\nb.wav\t\r\n"
    folder = _folder(tmp_path, tsv, "a.wav", "b.wav")
    assert load_transcripts(folder) == [(folder / "a.wav", "가나"), (folder / "b.wav", "")]


def test_the_shipped_samples_are_listed() -> None:
    entries = load_transcripts(SAMPLES)
    assert entries == [(SAMPLES / "ko-read-sentence.wav", "그는 이리저리 피하면서 길 한 옆으로 걸어갔다")]


def test_missing_tsv(tmp_path: Path) -> None:
    with pytest.raises(STTError, match=r"no transcripts\.tsv in .* file<TAB>"):
        load_transcripts(tmp_path)


def test_line_without_tab(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "# ok\na.wav 가나\n", "a.wav")
    with pytest.raises(STTError, match=r"transcripts\.tsv, line 2: no tab") as caught:
        load_transcripts(folder)
    assert "\n" not in str(caught.value)


def test_line_without_file_name(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "\t가나\n")
    with pytest.raises(STTError, match=r"line 1: no file name"):
        load_transcripts(folder)


def test_listed_file_missing(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "a.wav\t가나\nmissing.wav\t다라\n", "a.wav")
    with pytest.raises(STTError, match=r"line 2: missing\.wav not found in .*remove the line"):
        load_transcripts(folder)


def test_no_recordings_listed(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "# nothing yet\n\n")
    with pytest.raises(STTError, match=r"lists no recordings"):
        load_transcripts(folder)


def test_tsv_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "transcripts.tsv").write_bytes("a.wav\t가나\n".encode("euc-kr"))
    with pytest.raises(STTError, match=r"not UTF-8"):
        load_transcripts(tmp_path)


def test_evaluate(folder: Path, fake: FakeRecogniser) -> None:
    report = evaluate(folder, fake)

    assert fake.calls == [folder / "a.wav", folder / "sub" / "b.wav"]
    assert report.engine == "vosk"
    assert report.folder == folder
    a, b = report.files
    assert a.path == Path("a.wav")
    assert a.hypothesis == "그 는 디비전 이 피 하면서 기흥 옆으로 걸어갔 다"
    assert a.cleaned == "그는 디비전이 피하면서 기흥 옆으로 걸어갔다"
    assert a.cer == pytest.approx(6 / 19)
    assert (a.audio_s, a.elapsed_s, a.final_latency_s) == (4.0, 1.0, 0.2)
    assert b.path == Path("sub/b.wav")
    assert b.cleaned == "가다"  # 다 at the end of the text is the ending
    assert b.cer == pytest.approx(1 / 2)
    # Pooled: (6 + 1) edits over (19 + 2) characters, not the mean of 6/19 and 1/2.
    assert report.pooled_cer == pytest.approx(7 / 21)
    assert report.median_final_latency_s == pytest.approx(0.3)
    assert report.total_audio_s == pytest.approx(5.0)
    assert report.total_elapsed_s == pytest.approx(1.5)
    assert report.real_time_factor == pytest.approx(0.3)


def test_report_is_frozen(folder: Path, fake: FakeRecogniser) -> None:
    report = evaluate(folder, fake)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.pooled_cer = 0.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.files[0].cer = 0.0  # type: ignore[misc]


def test_cer_is_computed_on_the_cleaned_whisper_text(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "a.wav\t좋아\n", "a.wav")
    looping = _transcript("좋아 좋아 좋아 좋아", 1.0, 0.1, 0.1, engine="whisper")
    report = evaluate(folder, lambda path: looping)
    assert report.engine == "whisper"
    assert report.files[0].cleaned == "좋아"
    assert report.pooled_cer == 0.0


def test_mixed_engines_are_named_together(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "a.wav\t가\nb.wav\t가\n", "a.wav", "b.wav")
    heard = {
        "a.wav": _transcript("가", 1.0, 0.1, 0.1, engine="vosk"),
        "b.wav": _transcript("가", 1.0, 0.1, 0.1, engine="whisper"),
    }
    assert evaluate(folder, FakeRecogniser(heard)).engine == "vosk+whisper"


def test_no_audio_gives_no_real_time_factor(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "a.wav\t가\n", "a.wav")
    report = evaluate(folder, lambda path: _transcript("", 0.0, 0.0, 0.0))
    assert report.real_time_factor is None
    assert report.files[0].cer == 1.0
    assert "(nothing)" in report.as_table()
    assert "n/a" in report.as_table()


def test_errors_of_the_recogniser_are_not_swallowed(folder: Path) -> None:
    def broken(path: Path) -> Transcript:
        raise STTError("recogniser broke")

    with pytest.raises(STTError, match="recogniser broke"):
        evaluate(folder, broken)


def test_as_json_round_trips(folder: Path, fake: FakeRecogniser) -> None:
    report = evaluate(folder, fake)
    data = report.as_json()
    text = json.dumps(data, ensure_ascii=False)
    assert json.loads(text) == data
    assert data["engine"] == "vosk"
    assert data["pooled_cer"] == pytest.approx(7 / 21)
    assert data["real_time_factor"] == pytest.approx(0.3)
    assert [f["path"] for f in data["files"]] == ["a.wav", "sub/b.wav"]
    assert data["files"][0]["cleaned"] == "그는 디비전이 피하면서 기흥 옆으로 걸어갔다"
    assert set(data["files"][0]) == {
        "path",
        "reference",
        "hypothesis",
        "cleaned",
        "cer",
        "audio_s",
        "elapsed_s",
        "final_latency_s",
    }


def test_as_table(folder: Path, fake: FakeRecogniser) -> None:
    report: STTBenchReport = evaluate(folder, fake)
    table = report.as_table()
    lines = table.splitlines()
    assert lines[0] == "engine: vosk"
    assert lines[1].startswith("file")
    file_rows = [line for line in lines if line.startswith(("a.wav", "sub/b.wav"))]
    assert len(file_rows) == len(report.files) == 2
    assert "31.6%" in file_rows[0] and "그는 디비전이 피하면서 기흥 옆으로 걸어갔다" in file_rows[0]
    assert "50.0%" in file_rows[1]
    pooled = [line for line in lines if line.startswith("pooled")]
    assert len(pooled) == 1
    assert "33.3%" in pooled[0] and "0.30" in pooled[0]
    assert lines[-1] == pooled[0]
    # The number columns line up across rows.
    assert len({line.index("%") for line in [*file_rows, *pooled]}) == 1
