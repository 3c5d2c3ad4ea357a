"""Errors of the inference server. Each message is one line: what is wrong, then what to do."""


class InferenceError(Exception):
    """A problem the developer can fix (bad persona file, port in use, missing token)."""
