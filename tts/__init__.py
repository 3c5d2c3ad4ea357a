"""Speech for Chachaping: Korean text normalisation, sentence splitting and synthesis.

Importing this package stays light (no numpy, piper or onnxruntime): the inference server
uses :mod:`tts.sentences` without the device extras. The engines live in
:mod:`tts.engines`.
"""

from tts.errors import TTSError
from tts.normalize import normalize_for_speech
from tts.sentences import SentenceSplitter, split_sentences

__all__ = ["SentenceSplitter", "TTSError", "normalize_for_speech", "split_sentences"]
