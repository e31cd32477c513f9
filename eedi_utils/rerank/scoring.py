"""The LLM stage: a hypothesis that joins the query, and a rerank of the retrieved top ranks.

Listwise: one prompt shows the question, the correct and the wrong answer and a window of
candidates labelled A, B, C, ...; a candidate's score is the log-probability of its label as
the next token, among the window's labels (no text is parsed). An optional second pass shows
the window reversed and the two are averaged (it cancels the model's preference for early
labels). Pointwise: one yes/no
prompt per candidate, score = log p(Yes) - log p(No), the logit difference.

Only the ranks inside a window are reordered; every other rank keeps its place, so the rows
stay 25 distinct ids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eedi_utils.config import RerankConfig
from eedi_utils.rerank.backends import LLMBackend, chat_ids, single_token_ids
from eedi_utils.rerank.prompts import (
    LABELS,
    YES_NO,
    hypothesis_messages,
    listwise_messages,
    pointwise_messages,
)


def hypotheses(long: pd.DataFrame, backend: LLMBackend, config: RerankConfig) -> list[str]:
    """One sentence per row naming the likely misconception (greedy)."""
    prompts = [chat_ids(backend.tokenizer, hypothesis_messages(row)) for _, row in long.iterrows()]
    return backend.generate(prompts, config.hypothesis_tokens)


def _spans(config: RerankConfig, width: int) -> list[tuple[int, int]]:
    spans = []
    for first, last in config.windows:
        if not 1 <= first <= last or last - first + 1 > len(LABELS):
            raise ValueError(
                f"[rerank] window {[first, last]}: need 1 <= first <= last, at most "
                f"{len(LABELS)} ranks"
            )
        if first <= width:
            spans.append((first - 1, min(last, width)))
    return spans


def listwise_scores(
    long: pd.DataFrame,
    windows: np.ndarray,
    names: dict[int, str],
    backend: LLMBackend,
    reverse_pass: bool,
) -> np.ndarray:
    """(rows, window) label log-probabilities, averaged with the reversed pass if asked."""
    size = windows.shape[1]
    label_ids = single_token_ids(backend.tokenizer, LABELS[:size])
    prompts = []
    for (_, row), ids in zip(long.iterrows(), windows):
        texts = [names[int(i)] for i in ids]
        prompts.append(chat_ids(backend.tokenizer, listwise_messages(row, texts)))
        if reverse_pass:
            prompts.append(chat_ids(backend.tokenizer, listwise_messages(row, texts[::-1])))
    logprobs = backend.choice_logprobs(prompts, label_ids)
    if not reverse_pass:
        return logprobs
    forward, backward = logprobs[0::2], logprobs[1::2]
    return (forward + backward[:, ::-1]) / 2


def pointwise_scores(
    long: pd.DataFrame, windows: np.ndarray, names: dict[int, str], backend: LLMBackend
) -> np.ndarray:
    """(rows, window) log p(Yes) - log p(No) per candidate."""
    yes_no = single_token_ids(backend.tokenizer, YES_NO)
    prompts = [
        chat_ids(backend.tokenizer, pointwise_messages(row, names[int(i)]))
        for (_, row), ids in zip(long.iterrows(), windows)
        for i in ids
    ]
    logprobs = backend.choice_logprobs(prompts, yes_no)
    return (logprobs[:, 0] - logprobs[:, 1]).reshape(windows.shape)


def reorder(ranked: np.ndarray, span: tuple[int, int], scores: np.ndarray) -> np.ndarray:
    """Sort each row's window by descending score (ties keep their order); the rest stays."""
    first, end = span
    order = np.argsort(-scores, axis=1, kind="stable")
    result = ranked.copy()
    result[:, first:end] = np.take_along_axis(ranked[:, first:end], order, axis=1)
    return result


def rerank(
    long: pd.DataFrame,
    ranked: np.ndarray,
    misconceptions: pd.DataFrame,
    backend: LLMBackend,
    config: RerankConfig,
) -> np.ndarray:
    """Reorder the windows of `ranked` (rows x ids), one window after another."""
    names = dict(zip(misconceptions["MisconceptionId"], misconceptions["MisconceptionName"]))
    long = long.reset_index(drop=True)
    for span in _spans(config, ranked.shape[1]):
        windows = ranked[:, span[0] : span[1]]
        if config.mode == "listwise":
            scores = listwise_scores(long, windows, names, backend, config.reverse_pass)
        else:
            scores = pointwise_scores(long, windows, names, backend)
        ranked = reorder(ranked, span, scores)
    return ranked
