"""Translation between the Anthropic Messages API and OpenAI Chat Completions (sans-io).

Pure functions over request and response dicts, streaming translators over SSE bytes,
error re-shaping, a local count_tokens estimate and model-list translation. Nothing here
does I/O or reads a clock; the relay composes these.
"""

from __future__ import annotations

from trioproxy.translate.error_map import (
    TranslationError,
    UpstreamFormatError,
    anthropic_error_from_openai,
    openai_error_from_anthropic,
    translate_error_body,
)
from trioproxy.translate.estimate import count_tokens_response, estimate_input_tokens
from trioproxy.translate.models import anthropic_models_to_openai, openai_models_to_anthropic
from trioproxy.translate.request import (
    ANTHROPIC_REQUEST_FIELDS,
    DEFAULT_MAX_TOKENS,
    OPENAI_REQUEST_FIELDS,
    Translated,
    anthropic_to_openai_request,
    openai_to_anthropic_request,
)
from trioproxy.translate.response import (
    FINISH_TO_STOP_REASON,
    STOP_REASON_TO_FINISH,
    anthropic_to_openai_response,
    openai_to_anthropic_response,
)
from trioproxy.translate.stream import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    wants_usage_chunk,
)

__all__ = [
    "ANTHROPIC_REQUEST_FIELDS",
    "DEFAULT_MAX_TOKENS",
    "FINISH_TO_STOP_REASON",
    "OPENAI_REQUEST_FIELDS",
    "STOP_REASON_TO_FINISH",
    "AnthropicToOpenAIStream",
    "OpenAIToAnthropicStream",
    "TranslationError",
    "Translated",
    "UpstreamFormatError",
    "anthropic_error_from_openai",
    "anthropic_models_to_openai",
    "anthropic_to_openai_request",
    "anthropic_to_openai_response",
    "count_tokens_response",
    "estimate_input_tokens",
    "openai_error_from_anthropic",
    "openai_models_to_anthropic",
    "openai_to_anthropic_request",
    "openai_to_anthropic_response",
    "translate_error_body",
    "wants_usage_chunk",
]
