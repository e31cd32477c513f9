"""The commit run scores the fold the shipped model held out, never rows it trained on."""

from __future__ import annotations

import json

from eedi_utils.config import KitConfig
from eedi_utils.pipeline import held_out_fold


def model_folder(tmp_path, name: str, val_fold: int, folds: int = 5, seed: int = 42):
    folder = tmp_path / name
    folder.mkdir()
    config = KitConfig().to_dict()
    config["train"]["val_fold"] = val_fold
    config["evaluate"].update(folds=folds, seed=seed)
    (folder / "resolved_config.json").write_text(json.dumps(config))
    return str(folder)


def test_the_fold_the_model_held_out_with_its_split(tmp_path) -> None:
    held_out = held_out_fold([model_folder(tmp_path, "m", 2, folds=3, seed=7)], KitConfig())
    assert (held_out.fold, held_out.folds, held_out.seed) == (2, 3, 7)
    config = KitConfig()
    config.evaluate.group_by = "SubjectId"
    held_out.apply(config)
    assert (config.evaluate.folds, config.evaluate.seed) == (3, 7)
    assert config.evaluate.group_by == "ConstructId"  # what the model was trained with


def test_a_model_trained_on_every_row_has_no_fold_to_score(tmp_path) -> None:
    held_out = held_out_fold([model_folder(tmp_path, "m", -1)], KitConfig())
    assert held_out.fold is None and "trained on every row" in held_out.reason


def test_models_that_held_out_different_folds_share_none(tmp_path) -> None:
    models = [model_folder(tmp_path, "a", 0), model_folder(tmp_path, "b", 1)]
    held_out = held_out_fold(models, KitConfig())
    assert held_out.fold is None and "different folds" in held_out.reason


def test_an_untrained_model_can_be_scored_on_any_fold(tiny_model) -> None:
    assert held_out_fold([str(tiny_model)], KitConfig()).fold == 0
