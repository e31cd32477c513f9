"""Out-of-fold retrieval candidates: each labelled train row's top-N from a retriever that did
not train on it, as the reranker sees them at inference (the unseen prior included). Saved with
what made them, so later reranker runs reuse them."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from accelerate import PartialState

from eedi_utils import pipeline
from eedi_utils.config import KitConfig
from eedi_utils.data import CompetitionData, labelled
from eedi_utils.inputs import resolve_input_path
from eedi_utils.provenance import Split, read_provenance
from eedi_utils.splits import Fold, config_folds

logger = logging.getLogger(__name__)
CANDIDATES_FILE = "candidates.npz"


def fold_retrievers(
    data: CompetitionData, folds: list[Fold], config: KitConfig, output_dir: Path
) -> list[str]:
    """One retriever folder per fold: those configured, else trained here without the fold."""
    given = config.train_reranker.retrievers
    if not given and PartialState().num_processes > 1:
        raise ValueError(
            "[train_reranker] retrievers is empty: train the fold retrievers first (one "
            "process, or `eedi train --val-fold K` each) and name them; several "
            "processes cannot train them inside this command"
        )
    if given:
        if len(given) not in (1, len(folds)):
            raise ValueError(
                f"[train_reranker] retrievers: {len(given)} folders for {len(folds)} folds; "
                "give one per fold, or one that trained on no train row"
            )
        chosen = [given[0]] * len(folds) if len(given) == 1 else list(given)
        check_fold_retrievers(chosen, config)
        return chosen
    from eedi_utils.train.retriever.run import OutputDirNotEmpty, RetrieverTraining

    paths = []
    for fold in folds:
        folder = output_dir / "retrievers" / f"fold-{fold.index}"
        fold_config = copy.deepcopy(config)
        fold_config.train.val_fold = fold.index
        if not (folder / "config_sentence_transformers.json").exists():
            logger.info("training the retriever of fold %d in %s", fold.index, folder)
            try:
                RetrieverTraining(data, folder, fold_config).run()
            except OutputDirNotEmpty as err:
                raise OutputDirNotEmpty(
                    f"{folder} holds an unfinished retriever run of fold {fold.index}: delete it "
                    f"to train it again here, or finish it with `eedi train --val-fold "
                    f"{fold.index} --output-dir {folder} --resume` and the same settings"
                ) from err
        paths.append(str(folder))
    check_fold_retrievers(paths, config)  # one left from a run on another split is refused
    return paths


def check_fold_retrievers(retrievers: list[str], config: KitConfig) -> None:
    """Each fold's retriever must not have trained on that fold's rows: one that trained on
    no train row, or one that held out exactly that fold of the [evaluate] split (from its
    resolved_config.json). In-fold candidates would be easier than the test's and inflate both
    the reranker's training and its reports."""
    evaluate = config.evaluate
    split = Split(evaluate.folds, evaluate.seed, evaluate.group_by)
    wrong = []
    for index, folder in enumerate(retrievers):
        found = read_provenance(resolve_input_path(folder, dataset=config.kaggle.model_dataset))
        if found.trained_on == "nothing":
            continue
        if found.trained_on == "fold" and found.val_fold == index and found.split == split:
            continue
        if found.trained_on == "fold" and found.split != split:
            why = f"held out fold {found.val_fold} of {found.split.describe()}"
        else:
            why = found.detail
        wrong.append(f"fold {index}: {folder} {why}")
    if wrong:
        raise ValueError(
            "[train_reranker] retrievers: each fold's retriever must have held out that fold of "
            f"[evaluate] ({split.describe()}), or trained on no train row; " + "; ".join(wrong)
        )


def out_of_fold_candidates(
    data: CompetitionData, config: KitConfig, output_dir: Path
) -> np.ndarray:
    """(labelled train rows, top_n) MisconceptionIds, each row ranked by its fold's retriever
    (run on the main process and saved; every process reads the same file)."""
    path = output_dir / CANDIDATES_FILE
    train = labelled(data.train())
    folds = config_folds(train, config.evaluate)
    state = PartialState()
    if state.is_main_process:
        retrievers = fold_retrievers(data, folds, config, output_dir)
        made_from = {
            "retrievers": retrievers,
            "top_n": config.train_reranker.top_n,
            "folds": config.evaluate.folds,
            "group_by": config.evaluate.group_by,
            "seed": config.evaluate.seed,
            "rows": len(train),
        }
        if not _saved_from(path, made_from):
            ranked = _rank(train, folds, retrievers, data, config)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, ranked=ranked, made_from=json.dumps(made_from))
    state.wait_for_everyone()
    return np.load(path)["ranked"]


def _saved_from(path: Path, made_from: dict) -> bool:
    if not path.exists():
        return False
    saved = json.loads(str(np.load(path)["made_from"]))
    if saved == made_from:
        logger.info("reusing the candidates in %s", path)
        return True
    logger.info("%s was made from %s; ranking again for %s", path, saved, made_from)
    return False


def _rank(
    train: pd.DataFrame,
    folds: list[Fold],
    retrievers: list[str],
    data: CompetitionData,
    config: KitConfig,
) -> np.ndarray:
    retrieval_only = copy.deepcopy(config)
    retrieval_only.rerank.enabled = retrieval_only.rerank.hypothesis = False
    retrieval_only.retrieval.top_k = config.train_reranker.top_n
    ranked = np.zeros((len(train), config.train_reranker.top_n), dtype=np.int64)
    for fold, retriever in zip(folds, retrievers):
        logger.info("candidates of fold %d from %s", fold.index, retriever)
        rows = train.iloc[fold.val_rows].reset_index(drop=True)
        ranked[fold.val_rows] = pipeline.rank_misconceptions(
            rows, data, [retriever], retrieval_only, fold.seen_ids
        )
    return ranked
