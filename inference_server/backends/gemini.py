"""Gemini through Google's `google-genai` SDK, streamed, with 차차's persona as system instruction."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
from google import genai
from google.genai import errors, types

from inference_server.backends.base import BackendError, LLMRequest
from inference_server.settings import GeminiSettings

_LOGGER = logging.getLogger(__name__)

# google-genai 3.x talks through `httpx2` (older releases through `httpx`); catch both.
_TIMEOUTS: tuple[type[BaseException], ...] = (httpx.TimeoutException,)
_TRANSPORT: tuple[type[BaseException], ...] = (httpx.HTTPError, OSError)
try:
    import httpx2

    _TIMEOUTS += (httpx2.TimeoutException,)
    _TRANSPORT += (httpx2.HTTPError,)
except ImportError:  # pragma: no cover - depends on the SDK's release
    pass

# Finish reasons that mean the model would not (or could not) answer this text.
_REFUSALS = {
    "SAFETY",
    "RECITATION",
    "OTHER",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "MALFORMED_FUNCTION_CALL",
    "IMAGE_SAFETY",
    "LANGUAGE",
}


def _reason_for(exc: errors.APIError) -> str:
    code = exc.code or 0
    if code == 429:
        return "rate_limited"
    said = f"{exc.message} {exc.details}".upper()
    if code in (401, 403) or (code == 400 and ("API_KEY" in said or "API KEY" in said)):
        return "auth"
    if code >= 500:
        return "server_error"
    return "bad_request"


class GeminiBackend:
    name = "gemini"

    def __init__(self, settings: GeminiSettings, api_key: str | None) -> None:
        self.settings = settings
        self._api_key = api_key
        self._client: genai.Client | None = None
        if api_key:
            options = types.HttpOptions(
                api_version=settings.api_version,
                timeout=int(settings.total_timeout_s * 1000),
                base_url=settings.base_url,
            )
            self._client = genai.Client(api_key=api_key, http_options=options)

    @property
    def unavailable_reason(self) -> str | None:
        if not self._api_key:
            return "GEMINI_API_KEY is not set"
        return None

    def _contents(self, request: LLMRequest) -> list[types.Content]:
        contents = [
            types.Content(role=turn.role, parts=[types.Part(text=turn.text)]) for turn in request.history
        ]
        contents.append(types.Content(role="user", parts=[types.Part(text=request.text)]))
        return contents

    async def stream(self, request: LLMRequest) -> AsyncIterator[str]:
        if self._client is None:
            raise BackendError("unavailable", self.unavailable_reason or "no client")
        config = types.GenerateContentConfig(
            system_instruction=request.system_instruction,
            temperature=self.settings.temperature,
            max_output_tokens=self.settings.max_output_tokens,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.total_timeout_s
        first_wait = min(self.settings.first_token_timeout_s, self.settings.total_timeout_s)
        chunks: AsyncIterator[types.GenerateContentResponse] | None = None
        produced = False
        try:
            chunks = await asyncio.wait_for(
                self._client.aio.models.generate_content_stream(
                    model=self.settings.model, contents=self._contents(request), config=config
                ),
                first_wait,
            )
            while True:
                wait = first_wait if not produced else max(0.0, deadline - loop.time())
                try:
                    chunk = await asyncio.wait_for(anext(chunks), wait)
                except StopAsyncIteration:
                    break
                text, refusal = _read_chunk(chunk)
                if text:
                    produced = True
                    yield text
                if refusal and not produced:
                    raise BackendError("blocked", f"finish reason {refusal}")
        except TimeoutError:
            what = "more text" if produced else "the first text"
            raise BackendError("timeout", f"no {what} from {self.settings.model} in time") from None
        except errors.APIError as exc:
            raise BackendError(_reason_for(exc), f"HTTP {exc.code} {exc.status}: {exc.message}") from None
        except _TIMEOUTS as exc:
            raise BackendError("timeout", f"{type(exc).__name__} talking to Gemini") from None
        except _TRANSPORT as exc:
            raise BackendError("network", f"{type(exc).__name__}: {exc}") from None
        except (ValueError, TypeError, KeyError) as exc:  # a response the SDK could not parse
            _LOGGER.exception("unexpected answer from Gemini")
            raise BackendError("bad_response", f"{type(exc).__name__}: {exc}") from None
        finally:
            closer = getattr(chunks, "aclose", None)
            if closer is not None:
                try:
                    await closer()
                except Exception:  # closing a broken stream must not hide the real error
                    _LOGGER.debug("closing the Gemini stream failed", exc_info=True)
        if not produced:
            raise BackendError("empty", f"{self.settings.model} returned no text")


def _read_chunk(chunk: types.GenerateContentResponse) -> tuple[str, str | None]:
    """The chunk's text and, when the model stopped for a reason other than success, that reason."""
    feedback = chunk.prompt_feedback
    if feedback is not None and feedback.block_reason:
        return "", str(getattr(feedback.block_reason, "value", feedback.block_reason))
    if not chunk.candidates:
        return "", None
    candidate = chunk.candidates[0]
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    text = "".join(p.text for p in parts if p.text and not p.thought)
    reason = candidate.finish_reason
    name = str(getattr(reason, "value", reason)) if reason else None
    return text, name if name in _REFUSALS else None
