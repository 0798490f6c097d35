"""Wire-format codecs, one module per API; recognised by path and body shape, never by host."""

from __future__ import annotations

from typing import Any

from prefire.wire.providers import anthropic, gemini, openai_chat, openai_responses
from prefire.wire.providers.base import LLMCodec

LLM_CODECS: tuple[LLMCodec, ...] = (
    openai_chat.CODEC,
    openai_responses.CODEC,
    anthropic.CODEC,
    gemini.CODEC,
)


def llm_codec_for(method: str, path: str, body: Any) -> LLMCodec | None:
    """The codec of the LLM API this request speaks, or None."""
    for codec in LLM_CODECS:
        if codec.matches(method, path, body):
            return codec
    return None
