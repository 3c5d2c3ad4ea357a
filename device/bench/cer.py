# SPDX-License-Identifier: GPL-3.0-or-later
"""Character error rate (CER) of Korean speech recognition, as ASR people count it.

Both texts are first brought to one form (:func:`normalise_for_cer`): Unicode
NFC, numbers read out the Korean way (so "1위" and "일 위" are the same), lower
case, and nothing but letters and digits — spaces and punctuation do not count,
because Korean spacing is loose and recognisers differ in it. The CER is then the
number of character edits (substitutions + deletions + insertions) that turn the
reference into the hypothesis, divided by the number of reference characters.

Over a set of recordings the CER is *pooled* (:func:`pooled_cer`): all edits over
all reference characters, so a long recording weighs more than a short one —
not the mean of the per-recording CERs.

An empty reference (after normalising) has no characters to divide by: its CER
is 0.0 when the hypothesis is empty too and 1.0 otherwise (jiwer itself would
return the bare count of inserted characters). In a pooled CER its inserted
characters still count as edits.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

import jiwer

from tts.number_reading import read_numbers

__all__ = ["cer", "char_edits", "normalise_for_cer", "pooled_cer"]

# Unicode categories kept: letters (L*), combining marks (M*) and numbers (N*).
_KEPT_CATEGORIES = ("L", "M", "N")


def normalise_for_cer(text: str) -> str:
    """``text`` as the CER compares it: NFC, numbers read in Korean, lower case,
    only letters and digits ("그는 1위, OK?" → "그는일위ok").

    Digits that the number reader leaves (there should be none) are kept as digits;
    letters of any script are kept, so Latin, Hanja or kana in a hypothesis count.
    """
    text = unicodedata.normalize("NFC", text)
    text = unicodedata.normalize("NFC", read_numbers(text)).lower()
    return "".join(ch for ch in text if unicodedata.category(ch).startswith(_KEPT_CATEGORIES))


def char_edits(reference: str, hypothesis: str) -> tuple[int, int]:
    """(character edits, reference characters) after :func:`normalise_for_cer`."""
    ref = normalise_for_cer(reference)
    hyp = normalise_for_cer(hypothesis)
    if not ref:
        return len(hyp), 0  # every hypothesis character is an insertion
    if not hyp:
        return len(ref), len(ref)  # every reference character is a deletion
    out = jiwer.process_characters(ref, hyp)
    return out.substitutions + out.deletions + out.insertions, len(ref)


def _rate(edits: int, length: int) -> float:
    if length == 0:
        return 0.0 if edits == 0 else 1.0
    return edits / length


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of ``hypothesis`` against ``reference``.

    0.0 is perfect; it may exceed 1.0 when the hypothesis is much longer than the
    reference. An empty reference gives 0.0 for an empty hypothesis, else 1.0.
    """
    return _rate(*char_edits(reference, hypothesis))


def pooled_cer(pairs: Iterable[tuple[str, str]]) -> float:
    """CER over many (reference, hypothesis) pairs: total edits / total reference characters.

    No pairs, or only empty references and hypotheses, give 0.0; only empty
    references with something recognised give 1.0.
    """
    total_edits = total_length = 0
    for reference, hypothesis in pairs:
        edits, length = char_edits(reference, hypothesis)
        total_edits += edits
        total_length += length
    return _rate(total_edits, total_length)
