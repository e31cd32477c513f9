"""`[generate]`: the LLM endpoint and the paraphrase and synthesis jobs. Plain dataclasses,
loaded and checked by `eedi_utils.config` with every other section; importing this needs no
extra."""

from __future__ import annotations

from dataclasses import dataclass, field

PARAPHRASE = ("paraphrase",)
SYNTHESIZE = ("synthesize",)
"""The commands a paraphrase-only or synthesis-only setting is a flag of."""


@dataclass
class GenerateConfig:
    """LLM data generation (`eedi paraphrase`, `eedi synthesize`) through any OpenAI-compatible
    endpoint."""

    model: str = field(default="gpt-4o-mini", metadata={"help": "Model name at the endpoint."})
    base_url: str = field(
        default="", metadata={"help": "OpenAI-compatible server URL; empty: OpenAI's API."}
    )
    api_key_env: str = field(
        default="OPENAI_API_KEY",
        metadata={"help": "Variable holding the key (never logged); unset: 'EMPTY' (local)."},
    )
    n: int = field(
        default=4,
        metadata={"help": "Paraphrases per question and misconception.", "commands": PARAPHRASE},
    )
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature."})
    max_tokens: int = field(default=600, metadata={"help": "Completion tokens per call."})
    concurrency: int = field(default=8, metadata={"help": "Calls in flight at once."})
    timeout: float = field(default=60.0, metadata={"help": "Seconds per call before retrying."})
    max_retries: int = field(
        default=4,
        metadata={"help": "Retries with backoff on 429 (Retry-After), 5xx, timeouts, drops."},
    )
    max_attempts: int = field(
        default=3, metadata={"help": "Asks per item until its answer is usable, then recorded."}
    )
    max_cost: float = field(default=0.0, metadata={"help": "USD cap; 0: no cap."})
    prices: dict[str, list[float]] = field(
        default_factory=lambda: {
            "gpt-4o-mini": [0.15, 0.60],
            "gpt-4.1-mini": [0.40, 1.60],
            "gpt-4.1-nano": [0.10, 0.40],
            "gpt-4o": [2.50, 10.00],
        },
        metadata={"help": "USD per million [input, output] tokens by model; others cost 0."},
    )
    structured_output: bool = field(
        default=True, metadata={"help": "Ask for a JSON schema (response_format)."}
    )
    per_misconception: int = field(
        default=2,
        metadata={"help": "New questions per misconception lacking rows.", "commands": SYNTHESIZE},
    )
    few_shot: int = field(
        default=3, metadata={"help": "Real rows shown per prompt.", "commands": SYNTHESIZE}
    )
    judge_model: str = field(
        default="",
        metadata={"help": "Model judging each question; empty: model.", "commands": SYNTHESIZE},
    )
    seed: int = field(
        default=42, metadata={"help": "Seed of few-shot example choice.", "commands": SYNTHESIZE}
    )
