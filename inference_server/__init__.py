"""The inference server: persona, history and the LLM backend chain behind one HTTP API."""

__version__ = "0.1.0"
