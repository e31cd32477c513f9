"""The rows of one training run: training queries and their gold ids (real rows of the
training folds plus generated rows), validation rows, and the misconception texts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from eedi_utils.config import KitConfig
from eedi_utils.data import (
    GENERATED_COLUMN,
    SOURCE_COLUMN,
    CompetitionData,
    DataError,
    labelled,
    load_questions,
    to_long,
)
from eedi_utils.inputs import resolve_input_path
from eedi_utils.splits import config_folds
from eedi_utils.text import misconception_texts, query_texts


@dataclass
class TrainingData:
    """Texts and ids of one training run: training rows, validation rows, documents."""

    queries: list[str]
    gold: np.ndarray
    documents: list[str]
    document_ids: np.ndarray
    val_queries: list[str]
    val_gold: np.ndarray
    val_seen: np.ndarray
    val_groups: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    """The [evaluate] group_by value (ConstructId by default) of each validation row."""
    variants: dict[int, list[str]] = field(default_factory=dict)
    """LLM-written document texts by misconception id, used as positives beside the original."""
    row_ids: list[str] = field(default_factory=list)
    """`QuestionId_Answer` of each training row (aligned with `queries`)."""
    real_rows: int | None = None
    """How many of the training rows, first, are real rows of train.csv (None: all)."""

    def round_texts(self, round_index: int = 0, seed: int = 0) -> list[str]:
        """This round's text of every document (aligned with `documents`). With variants, each
        round draws one text per misconception; positives and negatives both use it, so rows
        sharing a gold share one positive text (the no-duplicates sampler keeps them apart)
        and a misconception's other text can never be a negative in that round."""
        rng = np.random.default_rng(seed + round_index)
        texts = []
        for text, misconception in zip(self.documents, self.document_ids):
            choices = [text, *self.variants.get(int(misconception), [])]
            texts.append(choices[int(rng.integers(len(choices)))] if len(choices) > 1 else text)
        return texts

    def labelled_ids(self) -> frozenset[int]:
        """The misconceptions that some real training row labels: the unseen prior's labelled
        ids, as `eedi evaluate` and `predict` count them (the real rows of train.csv on the
        training side), so a strength is applied to the ids it was tuned on."""
        return frozenset(int(g) for g in self.gold[: self.real_rows])

    def positives(self, texts: list[str]) -> list[str]:
        """The gold document text of each training row, from one round's `round_texts`."""
        position = {int(i): p for p, i in enumerate(self.document_ids)}
        return [texts[position[int(g)]] for g in self.gold]


def extra_rows(path: str | Path, data: CompetitionData, held_out: set[int]) -> pd.DataFrame:
    """Labelled generated rows of `path`, less those made from a held-out question."""
    path = Path(path)
    questions = load_questions(path, set(data.misconceptions["MisconceptionId"]), True)
    return generated_rows(questions, path, held_out)


def generated_rows(questions: pd.DataFrame, path: Path, held_out: set[int]) -> pd.DataFrame:
    """Long labelled rows of generated `questions`, less those made from a held-out question."""
    if SOURCE_COLUMN not in questions.columns:
        raise DataError(
            path,
            "needed to keep rows made from validation questions out of training",
            row="header",
            column=SOURCE_COLUMN,
        )
    sources = dict(zip(questions["QuestionId"], questions[SOURCE_COLUMN].str.strip()))
    rows = labelled(to_long(questions))
    made_from = rows["QuestionId"].map(sources)
    return rows[~made_from.isin({str(q) for q in held_out})].reset_index(drop=True)


def prepare_data(data: CompetitionData, config: KitConfig) -> TrainingData:
    """Labelled train rows split by question; the validation fold never joins training, nor
    does a generated row made from one of its questions."""
    train = labelled(data.train())
    gold = train["MisconceptionId"].to_numpy(np.int64)
    if config.train.val_fold >= 0:
        fold = config_folds(train, config.evaluate)[config.train.val_fold]
        train_rows, val_rows = fold.train_rows, fold.val_rows
        val_seen = fold.seen_mask(gold[val_rows])
    else:
        train_rows, val_rows = np.arange(len(train)), np.array([], dtype=np.int64)
        val_seen = np.array([], dtype=bool)
    held_out = {int(q) for q in train["QuestionId"].iloc[val_rows]}
    questions = data.train_questions()
    in_data_dir = questions[questions[GENERATED_COLUMN]]
    training_rows = pd.concat(
        [train.iloc[train_rows]]
        + (
            [generated_rows(in_data_dir, data.data_dir / "train.csv", held_out)]
            if len(in_data_dir)
            else []
        )
        + [
            extra_rows(resolve_input_path(path, dataset=config.kaggle.data_dataset), data, held_out)
            for path in config.train.extra_train_files
        ],
        ignore_index=True,
    )
    variants = data.misconception_variants()
    variant_texts = misconception_texts(variants, config.text)
    by_id: dict[int, list[str]] = {}
    for misconception, text in zip(variants["MisconceptionId"], variant_texts):
        by_id.setdefault(int(misconception), []).append(text)
    return TrainingData(
        queries=query_texts(training_rows, config.text),
        gold=training_rows["MisconceptionId"].to_numpy(np.int64),
        documents=misconception_texts(data.misconceptions, config.text),
        document_ids=data.misconceptions["MisconceptionId"].to_numpy(np.int64),
        val_queries=query_texts(train.iloc[val_rows], config.text),
        val_gold=gold[val_rows],
        val_seen=val_seen,
        val_groups=train[config.evaluate.group_by].to_numpy()[val_rows],
        variants=by_id,
        row_ids=training_rows["QuestionId_Answer"].astype(str).tolist(),
        real_rows=len(train_rows),
    )
