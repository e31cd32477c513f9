"""The unseen-misconception prior: tuned by `eedi train` on the validation fold, stored with
the model, and applied by `eedi predict --model OUT` exactly as stored."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch

from eedi_utils.config import KitConfig
from eedi_utils.data import CompetitionData, labelled
from eedi_utils.pipeline import evaluate, rank_misconceptions
from eedi_utils.prior import PRIOR_FILE, UnseenPrior, read_prior, write_prior
from eedi_utils.train.retriever.run import RetrieverTraining


def test_bonus_goes_to_never_labelled_ids_only() -> None:
    prior = UnseenPrior(0.1, frozenset({2, 4}))
    assert prior.bonus([1, 2, 3, 4]).tolist() == [np.float32(0.1), 0.0, np.float32(0.1), 0.0]


def test_a_stored_prior_reorders_predict_and_the_config_overrides_it(
    sample, tiny_model, tmp_path
) -> None:
    data = CompetitionData(sample)
    ids = data.misconceptions["MisconceptionId"].tolist()
    favourite = ids[7]
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    write_prior(model, UnseenPrior(5.0, frozenset(ids) - {favourite}), "test")
    config = KitConfig()
    config.retrieval.show_progress = False
    test = data.test()
    ranked = rank_misconceptions(test, data, [str(model)], config)  # no train.csv: stored ids
    assert (ranked[:, 0] == favourite).all()  # a large prior puts the only unseen id first
    config.retrieval.unseen_prior = 0.0
    plain = rank_misconceptions(test, data, [str(model)], config)
    assert not (plain[:, 0] == favourite).all()


def test_evaluate_ranks_each_fold_with_its_own_labelled_ids(sample, tiny_model) -> None:
    config = KitConfig()
    config.retrieval.show_progress = False
    config.evaluate.folds = 3
    plain = evaluate(CompetitionData(sample), [str(tiny_model)], config)
    config.retrieval.unseen_prior = 5.0  # far above any cosine gap: unseen ids come first
    boosted = evaluate(CompetitionData(sample), [str(tiny_model)], config)
    assert boosted["unseen"]["map@25"] > plain["unseen"]["map@25"]
    assert boosted["seen"]["map@25"] < plain["seen"]["map@25"]
    assert {"map@25_lb", "unseen_share"} <= set(boosted) and boosted["group_by"] == "ConstructId"


def test_train_tunes_the_prior_on_the_validation_fold_and_stores_it(
    sample, tiny_model, tmp_path, caplog
) -> None:
    config = KitConfig()
    config.retrieval.show_progress = False
    config.evaluate.folds = 3
    config.train.base_model = str(tiny_model)
    config.train.epochs = 1
    config.train.batch_size = 8
    config.train.mixed_precision = "no"
    config.train.unseen_prior_grid = [0.0, 0.05, 5.0]
    training = RetrieverTraining(CompetitionData(sample), tmp_path / "out", config)
    training.run()
    stored = json.loads((tmp_path / "out" / PRIOR_FILE).read_text())
    table = stored["tuning"]
    assert [row["unseen_prior"] for row in table] == [0.0, 0.05, 5.0]
    best = max(table, key=lambda row: row["map@25_lb"])
    assert stored["strength"] == best["unseen_prior"]
    assert stored["source"].startswith("tuned on fold 0")
    assert table[2]["unseen"] >= table[0]["unseen"] and table[2]["seen"] <= table[0]["seen"]
    fitted = stored["cross_fitted"]  # each half ranked by the strength the other half chose
    assert fitted["unseen_prior"].startswith("cross-fitted [")
    assert fitted["map@25_lb"] <= best["map@25_lb"] + 1e-9  # never above the in-fold best
    if stored["strength"] == 5.0:
        assert any("largest tried" in note for note in stored["notes"])
    assert set(stored["labelled_ids"]) == {int(g) for g in training.data.gold}
    train = labelled(CompetitionData(sample).train())
    assert set(stored["labelled_ids"]) < set(train["MisconceptionId"].astype(int))

    # The final model takes the strength its CV run chose, and says so.
    config.train.val_fold = -1
    config.train.unseen_prior_from = str(tmp_path / "out")
    RetrieverTraining(CompetitionData(sample), tmp_path / "final", config).run()
    final = json.loads((tmp_path / "final" / PRIOR_FILE).read_text())
    assert final["strength"] == stored["strength"]
    assert final["source"] == f"tuned by the CV run {tmp_path / 'out'} on its fold 0"
    assert set(final["labelled_ids"]) == {int(i) for i in train["MisconceptionId"]}

    config.retrieval.unseen_prior = 0.07  # set by hand: wins over the CV run
    RetrieverTraining(CompetitionData(sample), tmp_path / "by-hand", config).run()
    assert read_prior(tmp_path / "by-hand").strength == 0.07

    config.retrieval.unseen_prior, config.train.unseen_prior_from = None, str(tmp_path / "final")
    with pytest.raises(ValueError, match="not a CV run of `eedi train`"):
        RetrieverTraining(CompetitionData(sample), tmp_path / "bad", config).run()

    config.train.unseen_prior_from = str(tmp_path / "own")  # refused before any training
    with pytest.raises(ValueError, match="this run's own output folder"):
        RetrieverTraining(CompetitionData(sample), tmp_path / "own", config).run()
    assert not (tmp_path / "own").exists()

    config.train.unseen_prior_from = ""
    with caplog.at_level(logging.WARNING):
        RetrieverTraining(CompetitionData(sample), tmp_path / "none", config).run()
    assert read_prior(tmp_path / "none").strength == 0.0
    assert "neither [train] unseen_prior_from" in caplog.text


def test_with_the_estimate_missing_nothing_is_tuned_and_reports_still_draw(tmp_path) -> None:
    """All validation rows seen: map@25_lb is missing for every strength, so the prior keeps
    the config's value (else 0) instead of a pick by a figure that counts no unseen rows as 0,
    and the curves, the CLI summary and the benchmark table show it as missing."""
    from eedi_utils.cli import summary
    from eedi_utils.metrics import format_score
    from eedi_utils.train.retriever.data import TrainingData
    from eedi_utils.train.retriever.plots import plot_training
    from eedi_utils.train.retriever.report import tune_unseen_prior

    rng = np.random.default_rng(0)
    documents = torch.nn.functional.normalize(torch.tensor(rng.normal(size=(30, 8))), dim=1)
    queries = documents[:6] + 0.1
    data = TrainingData(
        queries=["q"] * 6,
        gold=np.arange(6),
        documents=[f"d{i}" for i in range(30)],
        document_ids=np.arange(30),
        val_queries=["v"] * 6,
        val_gold=np.arange(6),
        val_seen=np.ones(6, bool),
    )
    config = KitConfig()
    config.train.unseen_prior_grid = [0.0, 0.1, 5.0]
    tuning = tune_unseen_prior(queries.float().numpy(), documents.float().numpy(), data, config)
    assert [row["map@25_lb"] for row in tuning.table] == [None, None, None]
    assert tuning.prior.strength == 0.0 and tuning.prior.labelled_ids == frozenset(range(6))
    assert tuning.cross_fitted is None and "is missing" in tuning.notes[0]
    config.retrieval.unseen_prior = 0.03
    again = tune_unseen_prior(queries.float().numpy(), documents.float().numpy(), data, config)
    assert again.prior.strength == 0.03

    report = {"map@25": 0.5, "seen": {"map@25": 0.5, "n": 6}, "unseen": {"map@25": 0.0, "n": 0}}
    report |= {"unseen_share": 0.0, "map@25_lb": None, "rank_histogram": {"1": 3, "miss": 3}}
    assert json.loads(json.dumps(summary({"fold": report}, 25)))["fold"]["map@25_lb"] is None
    history = [{"epoch": epoch, **report} for epoch in range(3)]
    assert plot_training(history, tmp_path / "curves.png").stat().st_size > 1000
    assert format_score(report["map@25_lb"]) == "missing"


def test_labelled_ids_are_the_real_training_rows_as_evaluate_counts_them() -> None:
    """Generated rows follow the real ones; their golds are not labelled ids, as `eedi
    evaluate` and `predict` (the real rows of train.csv) count them."""
    from eedi_utils.train.retriever.data import TrainingData

    empty = np.array([], dtype=np.int64)
    data = TrainingData(["q"] * 3, np.array([1, 2, 9]), [], empty, [], empty, empty, real_rows=2)
    assert data.labelled_ids() == frozenset({1, 2})


def test_ranking_with_other_text_than_the_model_trained_with_warns(
    sample, tiny_model, tmp_path, caplog
) -> None:
    model = tmp_path / "old"
    shutil.copytree(tiny_model, model)
    trained = KitConfig().to_dict()
    trained["text"]["query_template"] = "{question} {wrong_answer}"  # as a 0.1 model was
    (model / "resolved_config.json").write_text(json.dumps(trained))
    config = KitConfig()
    config.retrieval.show_progress = False
    data = CompetitionData(sample)
    with caplog.at_level(logging.WARNING):
        rank_misconceptions(data.test(), data, [str(model)], config)
    assert "was trained with other [text] query_template" in caplog.text
