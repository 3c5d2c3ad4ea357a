"""Shaping a backend's streamed text into the sentences the doll speaks (pure: no I/O, no asyncio).

A `ReplyShaper` takes the text pieces of one backend's answer as they come and hands back the
sentences that are ready to be spoken: the ⟦heard⟧ prefix of an audio-mode reply is taken off,
the first clause goes out at its comma, every other piece goes through the sentence splitter,
markup the voice cannot say is cleaned away, and no more than `max_sentences` come out.
"""

from __future__ import annotations

from inference_server.backends.base import HEARD_CLOSE, HEARD_OPEN
from tts.normalize import clean_reply_text
from tts.sentences import SentenceSplitter


class HeardPrefix:
    """Strips the ⟦what the model heard⟧ prefix of an audio-mode reply from its stream."""

    GIVE_UP_CHARS = 400

    def __init__(self, expected: bool) -> None:
        self.pending = expected
        self.buffer = ""
        self.heard: str | None = None

    def feed(self, delta: str) -> str:
        if not self.pending:
            return delta
        self.buffer += delta
        stripped = self.buffer.lstrip()
        if not stripped:
            return ""
        if not stripped.startswith(HEARD_OPEN):
            self.pending = False
            return self.buffer
        end = stripped.find(HEARD_CLOSE)
        if end < 0:
            return "" if len(stripped) < self.GIVE_UP_CHARS else self._give_up(stripped)
        self.pending = False
        self.heard = stripped[len(HEARD_OPEN) : end].strip() or None
        return stripped[end + len(HEARD_CLOSE) :]

    def _give_up(self, text: str) -> str:
        self.pending = False
        return text.replace(HEARD_OPEN, "")


class FirstClause:
    """Lets the reply's first clause out before its sentence is done, so the doll can start
    speaking sooner: "진주야, 오늘 하루…" sends "진주야," as soon as the comma arrives.

    Only the first piece of a reply is cut this way, and only at a comma after a few letters;
    everything after goes through the sentence splitter as usual.
    """

    MIN_LETTERS = 2

    def __init__(self) -> None:
        self.done = False
        self.buffer = ""
        self.clause_sent = False

    def feed(self, delta: str) -> tuple[str | None, str]:
        """(the first clause if it is complete now, text to pass on to the splitter)."""
        if self.done:
            return None, delta
        self.buffer += delta
        for index, char in enumerate(self.buffer):
            if char in ".!?…~\n":
                self.done = True
                rest, self.buffer = self.buffer, ""
                return None, rest
            if char in ",，" and index + 1 < len(self.buffer) and self.buffer[index + 1].isspace():
                clause = self.buffer[: index + 1].strip()
                if sum(c.isalpha() for c in clause) >= self.MIN_LETTERS:
                    self.done = self.clause_sent = True
                    rest, self.buffer = self.buffer[index + 1 :], ""
                    return clause, rest
        return None, ""

    def flush(self) -> str:
        rest, self.buffer, self.done = self.buffer, "", True
        return rest


def speakable(sentences: list[str]) -> list[str]:
    """Sentences with markup, emoji, lists and URLs removed; empty ones dropped."""
    return [s for s in (clean_reply_text(x) for x in sentences) if s]


class ReplyShaper:
    """One backend's answer, piece by piece → the sentences to speak, at most `max_sentences`
    (an early first clause does not count as one).

    `feed` each text piece as it arrives and speak what it returns; at the end of the stream,
    `end` returns the rest. A stream cut off at the token limit (`truncated`) loses its
    unfinished last sentence rather than speaking half of it; `dropped` then holds what was lost.
    """

    def __init__(self, max_sentences: int, *, audio: bool = False) -> None:
        self.max_sentences = max_sentences
        self.sentences: list[str] = []
        self.dropped: list[str] = []
        self._splitter = SentenceSplitter()
        self._prefix = HeardPrefix(audio)
        self._first = FirstClause()

    @property
    def heard(self) -> str | None:
        """Audio mode: what the model said it heard (None until its prefix is complete)."""
        return self._prefix.heard

    @property
    def full(self) -> bool:
        return len(self.sentences) - (1 if self._first.clause_sent else 0) >= self.max_sentences

    def feed(self, piece: str) -> list[str]:
        clause, passed = self._first.feed(self._prefix.feed(piece))
        return self._take(([clause] if clause else []) + self._splitter.feed(passed))

    def end(self, *, truncated: bool = False) -> list[str]:
        complete = self._splitter.feed(self._first.flush())
        rest = self._splitter.flush()
        if truncated:
            self.dropped = rest
        else:
            complete += rest
        return self._take(complete)

    def _take(self, ready: list[str]) -> list[str]:
        taken = []
        for sentence in speakable(ready):
            if self.full:
                break
            taken.append(sentence)
            self.sentences.append(sentence)
        return taken
