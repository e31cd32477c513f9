"""Training prompts of the reranker, built with the [rerank] stage's own prompt functions and
chat template, so training and inference see the same tokens.

- Listwise: a list of `size` candidates (drawn per row from `list_sizes`): the retriever's top
  non-gold candidates in rank order, with the gold inserted at a random position (also when
  the retriever missed it); the target is the gold's letter.
- Pointwise: a group of `group_size` Yes/No prompts, the gold's first, then its top non-gold
  candidates; the target is the first prompt of the group.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from transformers import PreTrainedTokenizerBase

from eedi_utils.rerank.backends import chat_ids
from eedi_utils.rerank.prompts import LABELS, listwise_messages, pointwise_messages

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListwiseExample:
    input_ids: list[int]
    n_choices: int
    label: int
    """Position of the gold among the choices (its letter)."""

    @property
    def prompts(self) -> list[list[int]]:
        """Its one prompt in a list, as a `PointwiseGroup` holds its prompts."""
        return [self.input_ids]


@dataclass(frozen=True)
class PointwiseGroup:
    prompts: list[list[int]]
    """The gold's prompt first, then its negatives'."""


def negatives(ranked: np.ndarray, gold: int, count: int) -> list[int]:
    """The first `count` candidates of a row's ranking that are not its gold."""
    return [int(i) for i in ranked if i != gold][:count]


def listwise_examples(
    rows: pd.DataFrame,
    ranked: np.ndarray,
    names: dict[int, str],
    tokenizer: PreTrainedTokenizerBase,
    list_sizes: Sequence[int],
    max_length: int,
    seed: int,
) -> list[ListwiseExample]:
    """One listwise prompt per row of `rows` (their gold in MisconceptionId, their candidates in
    `ranked`); prompts longer than `max_length` tokens are left out and counted in the log."""
    largest = min(len(LABELS), ranked.shape[1])
    sizes = [s for s in list_sizes if 2 <= s <= largest]
    if not sizes:
        raise ValueError(
            f"[train_reranker] list_sizes {list(list_sizes)}: need sizes from 2 to {largest} "
            "(single-token letters, at most top_n)"
        )
    rng = np.random.default_rng(seed)
    examples, too_long = [], 0
    for (_, row), candidates in zip(rows.iterrows(), ranked):
        gold = int(row["MisconceptionId"])
        size = int(rng.choice(sizes))
        ids = negatives(candidates, gold, size - 1)
        position = int(rng.integers(len(ids) + 1))
        ids.insert(position, gold)
        prompt = chat_ids(tokenizer, listwise_messages(row, [names[i] for i in ids]))
        if len(prompt) > max_length:
            too_long += 1
            continue
        examples.append(ListwiseExample(prompt, len(ids), position))
    _log_left_out(too_long, len(rows), max_length)
    return examples


def pointwise_groups(
    rows: pd.DataFrame,
    ranked: np.ndarray,
    names: dict[int, str],
    tokenizer: PreTrainedTokenizerBase,
    group_size: int,
    max_length: int,
) -> list[PointwiseGroup]:
    """One group of Yes/No prompts per row: the gold's, then `group_size - 1` negatives'."""
    if not 2 <= group_size <= ranked.shape[1]:
        raise ValueError(
            f"[train_reranker] group_size {group_size}: need 2 to top_n = {ranked.shape[1]}"
        )
    groups, too_long = [], 0
    for (_, row), candidates in zip(rows.iterrows(), ranked):
        gold = int(row["MisconceptionId"])
        ids = [gold, *negatives(candidates, gold, group_size - 1)]
        prompts = [chat_ids(tokenizer, pointwise_messages(row, names[i])) for i in ids]
        if max(len(p) for p in prompts) > max_length:
            too_long += 1
            continue
        groups.append(PointwiseGroup(prompts))
    _log_left_out(too_long, len(rows), max_length)
    return groups


def _log_left_out(too_long: int, total: int, max_length: int) -> None:
    if too_long:
        logger.warning(
            "%d of %d rows left out: prompt over [train_reranker] max_length = %d tokens",
            too_long,
            total,
            max_length,
        )
