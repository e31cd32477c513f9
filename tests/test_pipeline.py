"""CV scores a fine-tuned model only on the fold it held out, from what its folder records
(`resolved_config.json`), never on rows it trained on; the prior counts as labelled the
training side of the rows it ranks."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from eedi_utils.cli import main
from eedi_utils.config import KitConfig
from eedi_utils.data import CompetitionData
from eedi_utils.pipeline import NothingToScore, evaluate, held_out_fold, rank_misconceptions
from eedi_utils.prior import UnseenPrior, write_prior


def model_folder(tmp_path, name: str, val_fold: int, folds: int = 5, seed: int = 42, model=None):
    """A model folder (a copy of `model` when given) recording that it held out `val_fold`."""
    folder = tmp_path / name
    if model is not None:
        shutil.copytree(model, folder)
    else:
        folder.mkdir()
    config = KitConfig().to_dict()
    config["train"]["val_fold"] = val_fold
    config["evaluate"].update(folds=folds, seed=seed)
    (folder / "resolved_config.json").write_text(json.dumps(config))
    return str(folder)


def quiet(folds: int = 3) -> KitConfig:
    config = KitConfig()
    config.retrieval.show_progress = False
    config.evaluate.folds = folds
    return config


def test_the_fold_the_model_held_out_with_its_split(tmp_path) -> None:
    held_out = held_out_fold([model_folder(tmp_path, "m", 2, folds=3, seed=7)], KitConfig())
    assert (held_out.fold, held_out.split.folds, held_out.split.seed) == (2, 3, 7)
    config = KitConfig()
    config.evaluate.group_by = "SubjectId"
    held_out.apply(config)
    assert (config.evaluate.folds, config.evaluate.seed) == (3, 7)
    assert config.evaluate.group_by == "ConstructId"  # what the model was trained with


def test_a_model_trained_on_every_row_has_no_fold_to_score(tmp_path) -> None:
    held_out = held_out_fold([model_folder(tmp_path, "m", -1)], KitConfig())
    assert held_out.fold is None and held_out.fine_tuned
    assert "trained on every labelled row" in held_out.reason


def test_models_that_held_out_different_folds_share_none(tmp_path) -> None:
    models = [model_folder(tmp_path, "a", 0), model_folder(tmp_path, "b", 1)]
    held_out = held_out_fold(models, KitConfig())
    assert held_out.fold is None and "different folds" in held_out.reason


def test_an_untrained_model_can_be_scored_on_every_fold(tiny_model) -> None:
    held_out = held_out_fold([str(tiny_model)], KitConfig())
    assert held_out.fold is None and not held_out.fine_tuned


def test_evaluate_model_scores_only_the_held_out_fold(sample, tiny_model, tmp_path, capsys):
    """`eedi evaluate --model OUT` used to score every fold, the trained ones included."""
    model = model_folder(tmp_path, "m", 1, folds=3, model=tiny_model)
    base = ["evaluate", "--data-dir", str(sample), "--model", model, "--quiet"]
    assert main(base) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fold"] == 1 and report["folds"] == 3  # the model's split, not the config's 5
    assert "held out" in report["scored"]
    alone = evaluate(CompetitionData(sample), [str(tiny_model)], quiet(), fold=1)
    assert report["n"] == alone["n"] and report["map@25"] == alone["map@25"]
    assert main([*base, "--fold", "0"]) == 2
    assert "fold 0: the model trained on its rows; it held out fold 1" in capsys.readouterr().err


def test_evaluate_refuses_a_model_trained_on_every_row(sample, tiny_model, tmp_path, capsys):
    model = model_folder(tmp_path, "final", -1, model=tiny_model)
    with pytest.raises(NothingToScore, match="trained on every labelled row"):
        evaluate(CompetitionData(sample), [model], quiet())
    assert main(["evaluate", "--data-dir", str(sample), "--model", model, "--quiet"]) == 2
    assert "no labelled row to score the model(s) on" in capsys.readouterr().err


def test_rrf_of_two_models_applies_the_stored_prior(sample, tiny_model, tmp_path) -> None:
    """The documented fusion with a stored prior used to raise; the prior now joins each
    model's ranking before the fusion."""
    data = CompetitionData(sample)
    ids = data.misconceptions["MisconceptionId"].tolist()
    favourite = ids[3]
    boosted = tmp_path / "boosted"
    shutil.copytree(tiny_model, boosted)
    write_prior(boosted, UnseenPrior(5.0, frozenset()), "test")
    config = quiet()
    config.retrieval.fusion = "rrf"
    labelled = frozenset(ids) - {favourite}
    ranked = rank_misconceptions(data.test(), data, [boosted, tiny_model], config, labelled)
    assert (ranked[:, 0] == favourite).all()


def test_the_prior_counts_the_scored_folds_training_side_not_the_stored_ids(
    sample, tiny_model, tmp_path
) -> None:
    """A stored prior whose ids label every misconception gives no bonus anywhere if its ids
    were used; each fold's own training side leaves its unseen ids to boost."""
    data = CompetitionData(sample)
    every = frozenset(data.misconceptions["MisconceptionId"].astype(int))
    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    config = quiet()
    plain = evaluate(data, [str(model)], config)
    write_prior(model, UnseenPrior(5.0, every), "test")
    boosted = evaluate(data, [str(model)], config)
    assert boosted["unseen"]["map@25"] > plain["unseen"]["map@25"]
    assert boosted["seen"]["map@25"] < plain["seen"]["map@25"]
    ranked_as_test = rank_misconceptions(data.test(), data, [str(model)], config, None)
    plain_test = rank_misconceptions(data.test(), data, [str(tiny_model)], config, None)
    np.testing.assert_array_equal(ranked_as_test, plain_test)  # no train.csv: the stored ids
