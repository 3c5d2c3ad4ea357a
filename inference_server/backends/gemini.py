"""Gemini through Google's `google-genai` SDK: streamed, persona as system instruction, counted
against the quota ledger before every call, and never retried in a tight loop."""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import AsyncIterator

import httpx
from google import genai
from google.genai import errors, types

from inference_server.api.models import QuotaStatus
from inference_server.backends.base import HEARD_CLOSE, HEARD_OPEN, BackendError, LLMRequest, StreamEnd
from inference_server.backends.registry import BuildContext
from inference_server.quota import QuotaLedger
from inference_server.settings import GeminiSettings
from inference_server.shared.secrets import reveal

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
_RELAXED_SAFETY = [
    types.SafetySetting(category=category, threshold=types.HarmBlockThreshold.BLOCK_ONLY_HIGH)
    for category in (
        types.HarmCategory.HARM_CATEGORY_HARASSMENT,
        types.HarmCategory.HARM_CATEGORY_HATE_SPEECH,
        types.HarmCategory.HARM_CATEGORY_SEXUALLY_EXPLICIT,
        types.HarmCategory.HARM_CATEGORY_DANGEROUS_CONTENT,
    )
]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
AUDIO_INSTRUCTION = (
    "Her message is a voice recording; the text beside it is what offline speech recognition "
    f"made of it and may be wrong. First write exactly what you heard her say between "
    f"{HEARD_OPEN} and {HEARD_CLOSE}, then answer what she really said."
)


def _http_client() -> httpx.AsyncClient:
    """The async HTTP client the SDK is handed, from the HTTP library the SDK speaks.

    Handing it one of ours (rather than letting it build its own) also keeps the SDK on httpx where
    aiohttp is installed: with aiohttp importable and no client given, the SDK switches its async
    path to aiohttp, which changes the exceptions and adds a silent retry after connection errors.
    """
    try:
        import httpx2

        return httpx2.AsyncClient()  # type: ignore[return-value]
    except ImportError:  # pragma: no cover - older SDKs speak plain httpx
        return httpx.AsyncClient()


class _ClientPerLoop:
    """One SDK client for each event loop that calls Gemini, each on an HTTP client of ours.

    Pooled connections belong to the loop that opened them. One SDK client shared by several loops
    (the server's thread, then a command's own loop) would hand a connection from a finished loop
    to the next one; and the SDK, when it is garbage-collected with its own connections open,
    schedules their closing on whatever loop runs at that moment, which fails with "Event loop is
    closed" long after, somewhere unrelated. So each loop gets its own client; `aclose` closes
    the running loop's connections; a client whose loop has ended is dropped (its sockets go with
    it), and the SDK never closes an HTTP client it was handed.
    """

    def __init__(self, api_key: str, options: types.HttpOptions) -> None:
        self._api_key = api_key
        self._options = options
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[genai.Client, httpx.AsyncClient]
        ] = weakref.WeakKeyDictionary()

    def get(self) -> genai.Client:
        """The running loop's client, made on its first call."""
        loop = asyncio.get_running_loop()
        if loop not in self._clients:
            for ended in [other for other in self._clients if other.is_closed()]:
                del self._clients[ended]
            http = _http_client()
            options = self._options.model_copy(update={"httpx_async_client": http})
            self._clients[loop] = (genai.Client(api_key=self._api_key, http_options=options), http)
        return self._clients[loop][0]

    async def aclose(self) -> None:
        """Close the running loop's connections (the server calls this as it stops)."""
        _, http = self._clients.pop(asyncio.get_running_loop(), (None, None))
        if http is not None:
            await http.aclose()


def retry_delay_s(exc: errors.APIError) -> float | None:
    """Google's RetryInfo.retryDelay ("17s") from a 429's details, if it gave one."""
    body = exc.details if isinstance(exc.details, dict) else {}
    for detail in (body.get("error") or {}).get("details") or []:
        if isinstance(detail, dict) and detail.get("@type", "").endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _reason_for(exc: errors.APIError) -> str:
    code = exc.code or 0
    said = f"{exc.message} {exc.details}".upper()
    if code == 429:
        return "rate_limited"
    if code in (401, 403) or (code == 400 and ("API_KEY" in said or "API KEY" in said)):
        return "auth"
    if code >= 500:
        return "server_error"
    return "bad_request"


def estimate_tokens(*texts: str) -> int:
    """A generous guess before the call (Korean runs ~1 token per 1–2 characters)."""
    return sum(len(t) for t in texts if t) + 16


class GeminiBackend:
    name = "gemini"

    def __init__(
        self, settings: GeminiSettings, api_key: str | None, ledger: QuotaLedger | None = None
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self._api_key = api_key
        self._clients: _ClientPerLoop | None = None
        self._rejected_key: str | None = None
        self._thinking = settings.thinking_budget is not None
        if api_key:
            options = types.HttpOptions(
                api_version=settings.api_version,
                timeout=int(settings.total_timeout_s * 1000),
                base_url=settings.base_url,
            )
            self._clients = _ClientPerLoop(api_key, options)

    @property
    def unavailable_reason(self) -> str | None:
        if not self._api_key:
            return "GEMINI_API_KEY is not set"
        if self._rejected_key:
            return f"Google rejected GEMINI_API_KEY ({self._rejected_key}): fix the key and restart"
        return None

    async def aclose(self) -> None:
        """Close this loop's connections to Google (the server calls it as it stops)."""
        if self._clients is not None:
            await self._clients.aclose()

    @property
    def hears_audio(self) -> bool:
        """Gemini listens to her recording when `send_audio` is on."""
        return self.settings.send_audio

    def quota_status(self) -> QuotaStatus | None:
        if self.ledger is None:
            return None
        return self.ledger.status(self.settings.model, self.settings.quota)

    # -- building the request -------------------------------------------------------------------

    def _contents(self, request: LLMRequest) -> list[types.Content]:
        contents = [
            types.Content(role=turn.role, parts=[types.Part(text=turn.text)]) for turn in request.history
        ]
        if request.audio is not None and self.settings.send_audio:
            parts = [
                types.Part(
                    inline_data=types.Blob(mime_type=request.audio.mime_type, data=request.audio.data)
                ),
                types.Part(text=f"(speech recognition heard: {request.text})"),
            ]
        else:
            parts = [types.Part(text=request.text)]
        contents.append(types.Content(role="user", parts=parts))
        return contents

    def _config(self, request: LLMRequest, *, max_tokens: int | None = None) -> types.GenerateContentConfig:
        instruction = request.instruction()
        if request.audio is not None and self.settings.send_audio:
            instruction += f"\n\n{AUDIO_INSTRUCTION}"
        return types.GenerateContentConfig(
            system_instruction=instruction,
            temperature=self.settings.temperature,
            max_output_tokens=max_tokens or self.settings.max_output_tokens,
            safety_settings=_RELAXED_SAFETY if self.settings.safety == "relaxed" else None,
            thinking_config=(
                types.ThinkingConfig(thinking_budget=self.settings.thinking_budget)
                if self._thinking
                else None
            ),
            response_mime_type="application/json" if request.json else None,
        )

    # -- quota ------------------------------------------------------------------------------------

    async def _admit(self, request: LLMRequest) -> int | None:
        if self.ledger is None:
            return None
        tokens = estimate_tokens(
            request.system_instruction,
            request.text,
            request.summary or "",
            request.memories or "",
            *(t.text for t in request.history),
        ) + (request.max_output_tokens or self.settings.max_output_tokens)
        if request.audio is not None and self.settings.send_audio:
            tokens += 32 * 30  # at most 30 s of audio at ~32 tokens a second
        limits = self.settings.quota
        while True:
            admission = await asyncio.to_thread(
                self.ledger.admit,
                self.settings.model,
                limits,
                channel=request.channel,
                tokens=tokens,
                tentative=request.tentative,
            )
            if admission.admitted:
                return admission.request_id
            if 0 < admission.wait_s <= limits.max_wait_s:
                _LOGGER.info("quota: waiting %.1f s for a per-minute slot", admission.wait_s)
                await asyncio.sleep(admission.wait_s)
                continue
            raise BackendError("quota", admission.reason)

    def _settle(
        self, request_id: int | None, usage: types.GenerateContentResponseUsageMetadata | None
    ) -> None:
        if self.ledger is None or request_id is None:
            return
        if usage is not None and usage.total_token_count:
            self.ledger.settle(request_id, usage.total_token_count)
        self.ledger.succeeded(self.settings.model)

    def _failed(self, exc: errors.APIError) -> BackendError:
        reason = _reason_for(exc)
        detail = f"HTTP {exc.code} {exc.status}: {exc.message}"
        if reason == "rate_limited" and self.ledger is not None:
            delay = retry_delay_s(exc)
            seconds = self.ledger.cool_down(
                self.settings.model, self.settings.quota, retry_after_s=delay, reason=exc.message or "429"
            )
            detail += f" — cooling down {seconds:.0f} s"
        elif reason == "auth" and not self._rejected_key:
            self._rejected_key = f"HTTP {exc.code} {exc.status}"
            _LOGGER.error(
                "Google rejected GEMINI_API_KEY (%s); Gemini is off until the key is fixed "
                "and the server restarted",
                self._rejected_key,
            )
        return BackendError(reason, detail)

    # -- calls ------------------------------------------------------------------------------------

    async def stream(self, request: LLMRequest) -> AsyncIterator[str | StreamEnd]:
        if self._clients is None or self.unavailable_reason:
            raise BackendError("unavailable", self.unavailable_reason or "no client")
        request_id = await self._admit(request)
        retried_without_thinking = False
        while True:
            try:
                async for piece in self._stream_once(request, request_id):
                    yield piece
                return
            except errors.APIError as exc:
                if (
                    exc.code == 400
                    and self._thinking
                    and not retried_without_thinking
                    and "thinking" in (exc.message or "").lower()
                ):
                    _LOGGER.warning(
                        "%s does not take a thinking budget; asking without one", self.settings.model
                    )
                    self._thinking, retried_without_thinking = False, True
                    request_id = await self._admit(request)
                    continue
                raise self._failed(exc) from None

    async def _stream_once(
        self, request: LLMRequest, request_id: int | None
    ) -> AsyncIterator[str | StreamEnd]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.total_timeout_s
        first_wait = min(self.settings.first_token_timeout_s, self.settings.total_timeout_s)
        chunks = None
        produced = False
        truncated = False
        usage = None
        try:
            chunks = await asyncio.wait_for(
                self._clients.get().aio.models.generate_content_stream(
                    model=self.settings.model,
                    contents=self._contents(request),
                    config=self._config(request, max_tokens=request.max_output_tokens),
                ),
                first_wait,
            )
            while True:
                wait = first_wait if not produced else max(0.0, deadline - loop.time())
                try:
                    chunk = await asyncio.wait_for(anext(chunks), wait)
                except StopAsyncIteration:
                    break
                usage = chunk.usage_metadata or usage
                text, finish = _read_chunk(chunk)
                if text:
                    produced = True
                    yield text
                if finish == "MAX_TOKENS":
                    truncated = True
                elif finish in _REFUSALS and not produced:
                    raise BackendError("blocked", f"finish reason {finish}")
        except TimeoutError:
            what = "more text" if produced else "first text"
            raise BackendError("timeout", f"no {what} from {self.settings.model} in time") from None
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
        self._settle(request_id, usage)
        if not produced:
            raise BackendError("empty", f"{self.settings.model} returned no text")
        if truncated:
            yield StreamEnd(truncated=True)

    async def complete(self, request: LLMRequest) -> str:
        if self._clients is None or self.unavailable_reason:
            raise BackendError("unavailable", self.unavailable_reason or "no client")
        request_id = await self._admit(request)
        try:
            response = await asyncio.wait_for(
                self._clients.get().aio.models.generate_content(
                    model=self.settings.model,
                    contents=self._contents(request),
                    config=self._config(request, max_tokens=request.max_output_tokens or 400),
                ),
                self.settings.total_timeout_s,
            )
        except TimeoutError:
            raise BackendError("timeout", "no answer in time") from None
        except errors.APIError as exc:
            raise self._failed(exc) from None
        except _TRANSPORT as exc:
            raise BackendError("network", f"{type(exc).__name__}: {exc}") from None
        self._settle(request_id, response.usage_metadata)
        text, _ = _read_chunk(response)
        if not text:
            raise BackendError("empty", "no text in the answer")
        return text


def _read_chunk(chunk: types.GenerateContentResponse) -> tuple[str, str | None]:
    """The chunk's text and its finish reason, if it has one."""
    feedback = chunk.prompt_feedback
    if feedback is not None and feedback.block_reason:
        blocked = str(getattr(feedback.block_reason, "value", feedback.block_reason))
        return "", blocked if blocked in _REFUSALS else "SAFETY"
    if not chunk.candidates:
        return "", None
    candidate = chunk.candidates[0]
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    text = "".join(p.text for p in parts if p.text and not p.thought)
    reason = candidate.finish_reason
    return text, (str(getattr(reason, "value", reason)) if reason else None)


def build(context: BuildContext) -> GeminiBackend:
    """Gemini as the registry builds it: GEMINI_API_KEY from the secrets, the server's ledger."""
    return GeminiBackend(context.llm.gemini, reveal(context.secrets.gemini_api_key), context.ledger)
