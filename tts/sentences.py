"""Text split into sentences, also while it is still being streamed in.

A sentence ends at a run of ``. ! ? … ~`` (so "...", "?!" and "~~" are one ending) or at
a line break. Closing quotes and brackets right after the ending stay with the sentence.
An ending is only taken once it is certain, which means the character after it must be
known: "3." may still become "3.5", "?" may become "?!". These do not end a sentence:
a lone "." with no space after it ("3.5", "node.js", "e.g"), a single "~" before a digit
("3시~5시"), and a single mark inside an ASCII token ("?q=1", "a!=b").

Fragments with fewer than two letters ("응.", "1.", "...") are not spoken on their own:
they are joined to the sentence that follows. A fragment left at the very end is kept if
it holds a letter or a digit and dropped if it is only punctuation.

This module is import-light on purpose: the inference server uses it without the
speech engines installed.
"""

from __future__ import annotations

import logging

_LOGGER = logging.getLogger(__name__)

ENDING_MARKS = frozenset(".!?…~")
CLOSING_MARKS = frozenset(")]}\"'”’」』》〉）")
MIN_SENTENCE_LETTERS = 2


def _letter_count(text: str) -> int:
    return sum(1 for ch in text if ch.isalpha())


def _ends_sentence(text: str, run_start: int, run_end: int, after_closers: int) -> bool:
    """Whether the ending-mark run ``text[run_start:run_end]`` ends a sentence.

    ``after_closers`` is the index just past any closing quotes or brackets after the run;
    the caller guarantees that the character there is known (or that the text is over).
    """
    following = text[after_closers] if after_closers < len(text) else ""
    if not following or following.isspace() or after_closers > run_end:
        return True
    if run_end - run_start > 1:
        return True
    if text[run_start] == ".":
        return False  # 3.5, node.js
    if text[run_start] == "~" and following.isdigit():
        return False  # 3시~5시, ~10분
    previous = text[run_start - 1] if run_start else ""
    inside_token = previous.isascii() and not previous.isspace() and following.isascii()
    return not (previous and inside_token)  # ?q=1, a!=b


class SentenceSplitter:
    """Cuts streamed text into sentences as soon as each one is certainly complete."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._text = ""
        self._start = 0  # where the sentence being collected begins
        self._scan = 0  # where to go on looking for an ending
        self._short_fragment = ""  # waits to be joined to the next sentence
        self._short_fragment_letters = 0

    def feed(self, delta: str) -> list[str]:
        """Add streamed text; return the sentences it completed, in order."""
        self._text += delta
        return self._collect(final=False)

    def flush(self) -> list[str]:
        """The text is over: return the sentences still held, and start afresh."""
        sentences = self._collect(final=True)
        if self._short_fragment and any(ch.isalnum() for ch in self._short_fragment):
            sentences.append(self._short_fragment)
        elif self._short_fragment:
            _LOGGER.debug("dropping a fragment with nothing to say: %r", self._short_fragment)
        self._reset()
        return sentences

    def _collect(self, final: bool) -> list[str]:
        text = self._text
        sentences: list[str] = []
        position = self._scan
        while position < len(text):
            char = text[position]
            if char == "\n":
                self._take(text[self._start : position], sentences)
                position += 1
                self._start = position
                continue
            if char not in ENDING_MARKS:
                position += 1
                continue
            run_end = position
            while run_end < len(text) and text[run_end] in ENDING_MARKS:
                run_end += 1
            after_closers = run_end
            while after_closers < len(text) and text[after_closers] in CLOSING_MARKS:
                after_closers += 1
            if after_closers == len(text) and not final:
                break  # what comes next decides; wait for more text
            if _ends_sentence(text, position, run_end, after_closers):
                self._take(text[self._start : after_closers], sentences)
                self._start = after_closers
                position = after_closers
            else:
                position = run_end
        self._scan = position
        if final:
            self._take(text[self._start :], sentences)
            self._start = self._scan = len(text)
        self._forget_taken_text()
        return sentences

    def _forget_taken_text(self) -> None:
        """Drop text already cut off, keeping one character: an ending looks one back."""
        cut = self._start - 1
        if cut > 0:
            self._text = self._text[cut:]
            self._start -= cut
            self._scan -= cut

    def _take(self, piece: str, sentences: list[str]) -> None:
        sentence = piece.strip()
        if not sentence:
            return
        letters = _letter_count(sentence) + self._short_fragment_letters
        if self._short_fragment:
            sentence = f"{self._short_fragment} {sentence}"
        if letters < MIN_SENTENCE_LETTERS:
            self._short_fragment, self._short_fragment_letters = sentence, letters
            return
        self._short_fragment, self._short_fragment_letters = "", 0
        sentences.append(sentence)


def split_sentences(text: str) -> list[str]:
    """All the sentences of a finished text, exactly as a ``SentenceSplitter`` streams them."""
    splitter = SentenceSplitter()
    return splitter.feed(text) + splitter.flush()
