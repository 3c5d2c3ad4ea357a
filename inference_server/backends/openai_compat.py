"""Any OpenAI-compatible chat endpoint through the `openai` SDK, streamed.

Covers local LLMs (Ollama, llama.cpp's server, LM Studio, vLLM) and OpenAI itself, including
a model fine-tuned on 차차's chats.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from inference_server.backends.base import BackendError, LLMRequest, StreamEnd
from inference_server.backends.registry import BuildContext
from inference_server.settings import OpenAISettings
from inference_server.shared.secrets import env_secret, reveal

_LOGGER = logging.getLogger(__name__)


class OpenAICompatibleBackend:
    name = "openai"
    hears_audio = False  # it reads the transcript only

    def __init__(self, settings: OpenAISettings) -> None:
        import openai

        self.settings = settings
        self._openai = openai
        # Local servers take any key.
        key = reveal(env_secret(settings.api_key_env)) or "not-needed"
        self._client = openai.AsyncOpenAI(
            base_url=settings.base_url,
            api_key=key,
            max_retries=0,
            timeout=openai.Timeout(settings.total_timeout_s, connect=3.0),
        )
        self._rejected: str | None = None

    @property
    def unavailable_reason(self) -> str | None:
        return self._rejected

    def _messages(self, request: LLMRequest) -> list[dict]:
        system = request.instruction()
        messages = [{"role": "system", "content": system}]
        for turn in request.history:
            messages.append({"role": "assistant" if turn.role == "model" else "user", "content": turn.text})
        messages.append({"role": "user", "content": request.text})
        return messages

    def _error(self, exc: Exception) -> BackendError:
        o = self._openai
        if isinstance(exc, o.APITimeoutError):
            return BackendError("timeout", f"{self.settings.base_url} did not answer in time")
        if isinstance(exc, o.APIConnectionError):
            return BackendError("network", f"cannot reach {self.settings.base_url}: {exc}")
        if isinstance(exc, o.RateLimitError):
            return BackendError("rate_limited", str(exc))
        if isinstance(exc, o.AuthenticationError | o.PermissionDeniedError):
            self._rejected = f"{self.settings.base_url} rejected the key in ${self.settings.api_key_env}"
            _LOGGER.error("%s; the openai backend is off until the key is fixed", self._rejected)
            return BackendError("auth", str(exc))
        if isinstance(exc, o.NotFoundError):
            return BackendError(
                "bad_request", f"model {self.settings.model!r} not found at {self.settings.base_url}"
            )
        if isinstance(exc, o.APIStatusError):
            kind = "server_error" if exc.status_code >= 500 else "bad_request"
            return BackendError(kind, f"HTTP {exc.status_code}: {exc.message}")
        return BackendError("bad_response", f"{type(exc).__name__}: {exc}")

    async def stream(self, request: LLMRequest) -> AsyncIterator[str | StreamEnd]:
        if self._rejected:
            raise BackendError("unavailable", self._rejected)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.total_timeout_s
        produced, truncated, stream = False, False, None
        try:
            stream = await asyncio.wait_for(
                self._client.chat.completions.create(
                    model=self.settings.model,
                    messages=self._messages(request),
                    stream=True,
                    temperature=self.settings.temperature,
                    max_tokens=request.max_output_tokens or self.settings.max_tokens,
                ),
                self.settings.first_token_timeout_s,
            )
            chunks = aiter(stream)
            while True:
                wait = (
                    self.settings.first_token_timeout_s if not produced else max(0.0, deadline - loop.time())
                )
                try:
                    chunk = await asyncio.wait_for(anext(chunks), wait)
                except StopAsyncIteration:
                    break
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                text = choice.delta.content if choice.delta else None
                if text:
                    produced = True
                    yield text
                if choice.finish_reason == "length":
                    truncated = True
                elif choice.finish_reason == "content_filter" and not produced:
                    raise BackendError("blocked", "content filter")
        except TimeoutError:
            raise BackendError("timeout", f"no text from {self.settings.base_url} in time") from None
        except self._openai.OpenAIError as exc:
            raise self._error(exc) from None
        finally:
            if stream is not None:
                try:
                    await stream.close()
                except Exception:  # closing a broken stream must not hide the real error
                    _LOGGER.debug("closing the stream failed", exc_info=True)
        if not produced:
            raise BackendError("empty", f"{self.settings.model} returned no text")
        if truncated:
            yield StreamEnd(truncated=True)

    async def complete(self, request: LLMRequest) -> str:
        try:
            response = await asyncio.wait_for(
                self._client.chat.completions.create(
                    model=self.settings.model,
                    messages=self._messages(request),
                    temperature=0.3,
                    max_tokens=request.max_output_tokens or 400,
                ),
                self.settings.total_timeout_s,
            )
        except TimeoutError:
            raise BackendError("timeout", "no summary in time") from None
        except self._openai.OpenAIError as exc:
            raise self._error(exc) from None
        text = (response.choices[0].message.content or "").strip() if response.choices else ""
        if not text:
            raise BackendError("empty", "no summary text")
        return text


def build(context: BuildContext) -> OpenAICompatibleBackend:
    """The backend as the registry builds it, from ``llm.openai``."""
    return OpenAICompatibleBackend(context.llm.openai)
