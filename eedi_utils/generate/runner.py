"""Run many LLM items concurrently: cached, cost-capped, one bad answer never stops the run.

An item knows its cache key and how to solve itself with `ask` (one chat call, metered); the
runner skips items already in the cache, limits calls in flight, stops starting calls once the
cost cap is reached, records each finished item in the cache at once, and counts the rest.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from eedi_utils.extras import require
from eedi_utils.generate.cache import JsonlCache
from eedi_utils.generate.client import ChatClient, Completion, CostMeter
from eedi_utils.generate.settings import GenerateConfig
from eedi_utils.text import Messages

openai = require("openai", "LLM data generation (eedi paraphrase, eedi synthesize)")

Ask = Callable[..., Awaitable[str]]
"""ask(messages, schema=None, model=None) -> the answer's text."""


class BudgetExhausted(Exception):
    """The cost cap is reached: no further call is started."""


class UnusableAnswer(ValueError):
    """An answer that cannot be used (not JSON, wrong shape); the item asks again."""


@dataclass(frozen=True)
class Outcome:
    """What an item produced; `complete` False when recorded short of what was asked."""

    value: Any
    complete: bool = True
    note: str = ""


@dataclass(frozen=True)
class Item:
    key: str
    solve: Callable[[Ask], Awaitable[Outcome]]
    prompt_chars: int
    expected_completion_tokens: int
    expected_calls: int = 1


@dataclass
class Summary:
    done: int = 0
    cached: int = 0
    short: int = 0
    failed: int = 0
    skipped: int = 0
    rejected: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    failures: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"done {self.done} (short {self.short}), cached {self.cached}, failed {self.failed}, "
            f"skipped {self.skipped}, rejected by the judge {self.rejected} | {self.calls} calls, "
            f"{self.prompt_tokens} prompt + {self.completion_tokens} completion tokens, "
            f"${self.cost:.4f}"
        )


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UnusableAnswer(f"not JSON ({err.msg}): {text[:80]!r}") from err


def estimate_tokens(chars: int) -> int:
    """About four characters a token for English and LaTeX (no tokenizer needed offline)."""
    return chars // 4 + 1


@dataclass(frozen=True)
class Estimate:
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    cached: int

    def __str__(self) -> str:
        return (
            f"{self.calls} calls ({self.cached} items already cached), about "
            f"{self.prompt_tokens} prompt + {self.completion_tokens} completion tokens, "
            f"about ${self.cost:.4f}"
        )


def estimate(items: Sequence[Item], cache: JsonlCache, meter: CostMeter, model: str) -> Estimate:
    """What a run would cost if every uncached item is answered at the first ask (re-asks come
    on top); the prices are those of `model`."""
    todo = [item for item in items if item.key not in cache]
    prompt = sum(estimate_tokens(item.prompt_chars) for item in todo)
    completion = sum(item.expected_completion_tokens for item in todo)
    calls = sum(item.expected_calls for item in todo)
    cost = meter.price(model, prompt, completion)
    return Estimate(calls, prompt, completion, cost, len(items) - len(todo))


async def _run(
    items: Sequence[Item],
    client: ChatClient,
    cache: JsonlCache,
    meter: CostMeter,
    concurrency: int,
    progress: bool,
) -> Summary:
    summary = Summary(cached=sum(item.key in cache for item in items))
    slots = asyncio.Semaphore(concurrency)

    async def ask(messages: Messages, schema: dict | None = None, model: str | None = None) -> str:
        if meter.exhausted:
            raise BudgetExhausted
        completion: Completion = await client.complete(messages, schema, model)
        meter.add(model or client.model, completion)
        return completion.text

    async def one(item: Item) -> None:
        async with slots:
            try:
                outcome = await item.solve(ask)
            except BudgetExhausted:
                summary.skipped += 1
                return
            except (openai.APIError, UnusableAnswer) as err:
                summary.failed += 1
                summary.failures.append(f"{item.key[:12]}: {type(err).__name__}: {err}"[:300])
                return
        cache.put(
            item.key, {"value": outcome.value, "complete": outcome.complete, "note": outcome.note}
        )
        summary.done += 1
        summary.short += not outcome.complete

    todo = [item for item in items if item.key not in cache]
    bar = tqdm(total=len(todo), disable=not progress, desc="LLM items")
    tasks = [asyncio.ensure_future(one(item)) for item in todo]
    try:
        for finished in asyncio.as_completed(tasks):
            await finished
            bar.update()
    finally:
        bar.close()
        await client.close()
    summary.calls = meter.calls
    summary.prompt_tokens = meter.prompt_tokens
    summary.completion_tokens = meter.completion_tokens
    summary.cost = meter.cost
    return summary


def run_items(
    items: Sequence[Item],
    client: ChatClient,
    cache: JsonlCache,
    meter: CostMeter,
    concurrency: int,
    progress: bool = True,
) -> Summary:
    """Solve every uncached item; finished ones are in `cache` even if the process dies.

    Inside a running event loop (a Jupyter kernel, where `asyncio.run` refuses to start) the
    loop runs in a thread of its own."""
    job = _run(items, client, cache, meter, concurrency, progress)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(job)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, job).result()


def run_job(
    items: Sequence[Item], folder: Path, config: GenerateConfig, dry_run: bool, progress: bool
) -> tuple[Summary | Estimate, list[dict[str, Any] | None]]:
    """Estimate (dry run) or solve `items`, cached in folder/cache.jsonl; with the cache entry
    of each item (None where it is not done)."""
    cache = JsonlCache(folder / "cache.jsonl")
    meter = CostMeter(config.prices, config.max_cost)
    if dry_run:
        return estimate(items, cache, meter, config.model), []
    summary = run_items(items, ChatClient(config), cache, meter, config.concurrency, progress)
    return summary, [cache.get(item.key) for item in items]
