"""The two jobs every entry point runs: predict a submission, and score retrieval by CV."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eedi_utils.config import KitConfig
from eedi_utils.data import CompetitionData, labelled
from eedi_utils.inputs import resolve_input_path
from eedi_utils.metrics import score_report
from eedi_utils.prior import UnseenPrior, read_prior
from eedi_utils.provenance import (
    Split,
    differing_settings,
    read_provenance,
    read_resolved_config,
)
from eedi_utils.retrieval import retrieve
from eedi_utils.splits import config_folds
from eedi_utils.submission import build_submission, read_submission, write_submission
from eedi_utils.text import misconception_texts, query_texts

logger = logging.getLogger(__name__)

ModelPaths = Sequence[str | Path | None]
HYPOTHESIS_PREFIX = "Likely misconception: "


def model_paths(models: ModelPaths | None, config: KitConfig) -> list[str | Path | None]:
    """Models given on the command line win over the config; none means the default model.

    A folder that is not here is looked up by name in the Kaggle inputs.
    """
    chosen = list(models or config.retrieval.models or [None])
    dataset = config.kaggle.model_dataset
    return [None if p is None else resolve_input_path(p, dataset=dataset) for p in chosen]


class NothingToScore(ValueError):
    """The models have no labelled row that all of them are known not to have trained on."""


@dataclass(frozen=True)
class HeldOut:
    """The fold to score the retrieval models on (None: every fold when none is fine-tuned,
    else there is none), the split it belongs to, and why."""

    fold: int | None
    split: Split
    reason: str
    fine_tuned: bool

    def apply(self, config: KitConfig) -> None:
        """Make `config`'s [evaluate] split the one the models were trained with."""
        config.evaluate.folds, config.evaluate.seed = self.split.folds, self.split.seed
        config.evaluate.group_by = self.split.group_by


def held_out_fold(models: ModelPaths | None, config: KitConfig) -> HeldOut:
    """The fold that none of the retrieval models trained on, from what each folder records
    (`provenance.read_provenance`); a base model trained on no row and does not count."""
    evaluate = config.evaluate
    asked = Split(evaluate.folds, evaluate.seed, evaluate.group_by)
    found = [read_provenance(path) for path in model_paths(models, config) if path is not None]
    tuned = [provenance for provenance in found if provenance.trained_on != "nothing"]
    if not tuned:
        reason = (
            "no fine-tuned model (no resolved_config.json: assumed to have trained on no "
            "train row): every fold can be scored"
        )
        return HeldOut(None, asked, reason, False)
    for provenance in tuned:
        if provenance.trained_on != "fold":
            reason = f"{provenance.path} {provenance.detail}: no fold is unseen by it, CV skipped"
            return HeldOut(None, asked, reason, True)
    held = {(p.val_fold, p.split) for p in tuned}
    if len(held) > 1:
        shown = "; ".join(f"{p.path}: fold {p.val_fold} of {p.split.describe()}" for p in tuned)
        reason = f"the models held out different folds ({shown}): none is unseen by all, CV skipped"
        return HeldOut(None, asked, reason, True)
    ((fold, split),) = held
    reason = f"scoring fold {fold} of {split.describe()}, which the model held out"
    if split != asked:
        reason += f" ([evaluate] asked for {asked.describe()}: the model's split is used)"
    return HeldOut(fold, split, reason, True)


TRAINED_WITH = {
    "text": ("query_template", "misconception_template", "query_instruction"),
    "retrieval": ("max_seq_length",),
}
"""Settings that shape what a fine-tuned model sees; ranking with others than it trained
with changes its inputs (a model of 0.1 trained with the question before the answers)."""


def warn_if_trained_otherwise(paths: Sequence[str | Path | None], config: KitConfig) -> None:
    """One warning per model folder whose resolved_config.json has other `TRAINED_WITH`
    settings than `config`."""
    current = config.to_dict()
    for path in paths:
        trained = read_resolved_config(path) if path is not None else None
        if trained is None:
            continue
        differ = differing_settings(trained, current, TRAINED_WITH)
        if differ:
            logger.warning(
                "%s was trained with other %s than this run ranks with: set them as in its %s",
                path,
                ", ".join(differ),
                "resolved_config.json",
            )


def stored_prior(paths: Sequence[str | Path | None]) -> UnseenPrior | None:
    """The prior stored in the first of these model folders that has one."""
    return next((p for p in (read_prior(x) for x in paths if x is not None) if p), None)


def prior_strength(paths: Sequence[str | Path | None], config: KitConfig) -> float:
    """[retrieval] unseen_prior when set, else the strength stored in the first model folder
    that has one, else 0."""
    if config.retrieval.unseen_prior is not None:
        return config.retrieval.unseen_prior
    stored = stored_prior(paths)
    return stored.strength if stored else 0.0


def unseen_prior(
    paths: Sequence[str | Path | None],
    config: KitConfig,
    labelled_ids: frozenset[int] | None,
) -> UnseenPrior | None:
    """The prior to rank with, of `prior_strength`. Its labelled ids are `labelled_ids`, the
    training side of the rows scored (a CV fold's, or all of train.csv for the test); only
    without train.csv are the ids stored with the model used."""
    strength = prior_strength(paths, config)
    if strength == 0.0:
        return None
    if labelled_ids is not None:
        return UnseenPrior(strength, labelled_ids)
    stored = stored_prior(paths)
    if stored is None:
        raise ValueError("[retrieval] unseen_prior needs train.csv to know which ids are labelled")
    return UnseenPrior(strength, stored.labelled_ids)


def labelled_ids(data: CompetitionData) -> frozenset[int] | None:
    """Misconceptions that a labelled row of train.csv names; None without train.csv."""
    if not data.has_train:
        return None
    return frozenset(int(i) for i in labelled(data.train())["MisconceptionId"])


def rank_misconceptions(
    long: pd.DataFrame,
    data: CompetitionData,
    models: ModelPaths | None,
    config: KitConfig,
    labelled: frozenset[int] | None = None,
) -> np.ndarray:
    """Ranked MisconceptionIds, shape (rows of `long`, top_k): retrieval (with the unseen
    prior, see `unseen_prior`), with the LLM stage around it when [rerank] asks (a hypothesis
    joining each query; a rerank of the top)."""
    queries = query_texts(long, config.text)
    if config.rerank.hypothesis or config.rerank.enabled:
        from eedi_utils.rerank import stage as llm_stage  # torch and transformers: only here
    if config.rerank.hypothesis:
        job = llm_stage.Job("hypothesis", long, None, data.misconceptions, config.rerank)
        guesses = llm_stage.run(job)
        queries = [f"{query}\n{HYPOTHESIS_PREFIX}{guess}" for query, guess in zip(queries, guesses)]
    paths = model_paths(models, config)
    warn_if_trained_otherwise(paths, config)
    prior = unseen_prior(paths, config, labelled)
    ids = data.misconceptions["MisconceptionId"].to_numpy()
    positions = retrieve(
        queries,
        misconception_texts(data.misconceptions, config.text),
        paths,
        config.retrieval,
        bonus=prior.bonus(ids) if prior else None,
    )
    ranked = ids[positions]
    if config.rerank.enabled:
        ranked = llm_stage.run(
            llm_stage.Job("rerank", long, ranked, data.misconceptions, config.rerank)
        )
    return ranked


def predict(
    data: CompetitionData, out: str | Path, models: ModelPaths | None, config: KitConfig
) -> Path:
    """Rank misconceptions for every wrong answer of test.csv and write a validated submission."""
    test = data.test()
    ranked = rank_misconceptions(test, data, models, config, labelled_ids(data))
    submission = build_submission(test, ranked)
    ids = data.misconceptions["MisconceptionId"].tolist()
    return write_submission(submission, out, test, ids, config.retrieval.top_k)


def evaluate(
    data: CompetitionData,
    models: ModelPaths | None,
    config: KitConfig,
    fold: int | None = None,
    max_questions: int | None = None,
) -> dict:
    """Score retrieval on labelled train rows, split into the `[evaluate]` folds (grouped by
    `group_by`), never on a row a fine-tuned model trained on.

    A fine-tuned model is scored on the fold it held out, on the split it was trained with
    (`held_out_fold`); a model with no such fold raises `NothingToScore`, and `fold` may only
    name the held-out one. Models that trained on no row score every fold, or `fold` alone.
    Each row counts as seen or unseen by whether its gold id appears in its fold's training
    rows; the report carries both, the unseen share and the leaderboard estimate. With an
    unseen prior, each fold is ranked with its own training side as the labelled ids.
    `max_questions` scores a seeded sample of that many questions (a quick check on Kaggle's
    commit run).
    """
    held = held_out_fold(models, config)
    if held.fine_tuned:
        if held.fold is None:
            raise NothingToScore(f"no labelled row to score the model(s) on: {held.reason}")
        if fold is not None and fold != held.fold:
            raise ValueError(
                f"fold {fold}: the model trained on its rows; it held out fold {held.fold} "
                f"only ({held.reason})"
            )
        config, fold = copy.deepcopy(config), held.fold
        held.apply(config)
    train = labelled(data.train())
    folds = config_folds(train, config.evaluate)
    if fold is not None and not 0 <= fold < len(folds):
        raise ValueError(f"fold must be between 0 and {len(folds) - 1}, got {fold}")
    chosen = folds if fold is None else [folds[fold]]
    gold = train["MisconceptionId"].to_numpy(np.int64)
    sampled = None
    if max_questions is not None:
        questions = np.unique(
            train["QuestionId"].to_numpy()[np.concatenate([f.val_rows for f in chosen])]
        )
        if max_questions < len(questions):
            rng = np.random.default_rng(config.evaluate.seed)
            sampled = rng.choice(questions, max_questions, replace=False)
    per_fold = prior_strength(model_paths(models, config), config) != 0.0
    groups = [[f] for f in chosen] if per_fold else [chosen]
    all_rows, all_seen, all_ranked = [], [], []
    for group in groups:
        rows = np.concatenate([f.val_rows for f in group])
        seen = np.concatenate([f.seen_mask(gold[f.val_rows]) for f in group])
        if sampled is not None:
            keep = np.isin(train["QuestionId"].to_numpy()[rows], sampled)
            rows, seen = rows[keep], seen[keep]
        if not len(rows):
            continue
        scored = train.iloc[rows].reset_index(drop=True)
        all_ranked.append(rank_misconceptions(scored, data, models, config, group[0].seen_ids))
        all_rows.append(rows)
        all_seen.append(seen)
    rows = np.concatenate(all_rows)
    report = score_report(
        np.concatenate(all_ranked),
        gold[rows],
        np.concatenate(all_seen),
        config.retrieval.top_k,
        config.evaluate.lb_unseen_share,
    )
    scope = "every fold" if fold is None else f"fold {fold}"
    return {
        "folds": config.evaluate.folds,
        "group_by": config.evaluate.group_by,
        "seed": config.evaluate.seed,
        "fold": "all" if fold is None else fold,
        "scored": held.reason if held.fine_tuned else scope,
        **report,
    }


def preview(
    data: CompetitionData, submission: str | Path, rows: int = 3, top: int = 3
) -> pd.DataFrame:
    """The first `rows` predictions of a submission beside their question, the correct and the
    wrong answer, and the names of the `top` misconceptions ranked first."""
    names = dict(
        zip(data.misconceptions["MisconceptionId"], data.misconceptions["MisconceptionName"])
    )
    predicted = read_submission(submission).head(rows)
    test = data.test().set_index("QuestionId_Answer")
    shown = []
    for key, ids in zip(predicted["QuestionId_Answer"], predicted["MisconceptionId"]):
        row = test.loc[key]
        ranked = [names[int(i)] for i in ids.split()[:top]]
        shown.append(
            {
                "QuestionId_Answer": key,
                "question": row["QuestionText"],
                "correct answer": row["CorrectText"],
                "wrong answer": row["AnswerText"],
                f"top {top} misconceptions": " | ".join(
                    f"{rank}. {name}" for rank, name in enumerate(ranked, 1)
                ),
            }
        )
    return pd.DataFrame(shown)
