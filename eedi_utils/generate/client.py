"""Chat calls to any OpenAI-compatible endpoint, with token usage priced per model.

Transport failures (429 honouring Retry-After, 5xx, timeouts, dropped connections) are retried
with backoff by the openai client itself (`max_retries`); what it gives up on reaches the
caller as `openai.APIError`. The API key is read from the environment and never printed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from eedi_utils.config import ConfigError
from eedi_utils.extras import require
from eedi_utils.generate.settings import GenerateConfig
from eedi_utils.text import Messages

openai = require("openai", "LLM data generation (eedi paraphrase, eedi synthesize)")


@dataclass(frozen=True)
class Completion:
    """One answer and what it cost in tokens."""

    text: str
    prompt_tokens: int
    completion_tokens: int


class CostMeter:
    """Tokens and dollars spent so far, against an optional cap."""

    def __init__(self, prices: dict[str, list[float]], max_cost: float = 0.0):
        self.prices = prices
        self.max_cost = max_cost
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.calls = 0
        self.cost = 0.0

    def price(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        per_million_in, per_million_out = self.prices.get(model, [0.0, 0.0])
        return (prompt_tokens * per_million_in + completion_tokens * per_million_out) / 1e6

    def add(self, model: str, completion: Completion) -> None:
        self.calls += 1
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.cost += self.price(model, completion.prompt_tokens, completion.completion_tokens)

    @property
    def exhausted(self) -> bool:
        return self.max_cost > 0 and self.cost >= self.max_cost


def api_key(config: GenerateConfig) -> str:
    """The key from the configured variable; local servers accept any, so 'EMPTY' if unset."""
    key = os.environ.get(config.api_key_env, "")
    if not key and not config.base_url:
        raise ConfigError(
            f"${config.api_key_env} is not set: put your OpenAI key there (see .env.example), "
            "or point --generate-base-url at an OpenAI-compatible server"
        )
    return key or "EMPTY"


class ChatClient:
    """Async chat completions with an optional JSON schema for the answer."""

    def __init__(self, config: GenerateConfig, model: str | None = None):
        self.config = config
        self.model = model or config.model
        self.client = openai.AsyncOpenAI(
            api_key=api_key(config),
            base_url=config.base_url or None,
            timeout=config.timeout,
            max_retries=config.max_retries,
        )

    async def complete(
        self,
        messages: Messages,
        schema: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> Completion:
        """One chat call; `model` overrides the client's (a judge on the same endpoint)."""
        extra: dict[str, Any] = {}
        if schema is not None and self.config.structured_output:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": True},
            }
        response = await self.client.chat.completions.create(
            model=model or self.model,
            messages=messages,
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
            **extra,
        )
        usage = response.usage
        return Completion(
            text=response.choices[0].message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    async def close(self) -> None:
        await self.client.close()
