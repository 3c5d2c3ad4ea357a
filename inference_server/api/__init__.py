"""The server–client contract: the typed answers of the HTTP API, and the client that reads them."""

from inference_server.api.client import InferenceClient, ServerUnavailable, TentativeRefused, TurnRejected
from inference_server.api.models import (
    NDJSON,
    BackendStatus,
    BreakerStatus,
    ChatEvent,
    DiskStatus,
    FallbackInfo,
    FinalEvent,
    Health,
    QuotaStatus,
    SentenceEvent,
    StoredTurn,
    Timings,
    decode_event,
    encode_event,
)

ReplySentence = SentenceEvent
ReplyFinal = FinalEvent

__all__ = [
    "NDJSON",
    "BackendStatus",
    "BreakerStatus",
    "ChatEvent",
    "DiskStatus",
    "FallbackInfo",
    "FinalEvent",
    "Health",
    "InferenceClient",
    "QuotaStatus",
    "ReplyFinal",
    "ReplySentence",
    "SentenceEvent",
    "ServerUnavailable",
    "StoredTurn",
    "TentativeRefused",
    "Timings",
    "TurnRejected",
    "decode_event",
    "encode_event",
]
