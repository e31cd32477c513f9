"""`eedi train` on the bundled sample with a tiny model: re-mining really runs, evaluation per
epoch, the output loads in `eedi predict`, and a run killed mid-epoch resumes."""

from __future__ import annotations

import json
import weakref

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import TrainerCallback

import eedi_utils.train.retriever.run as training
from eedi_utils.cli import main
from eedi_utils.config import KitConfig
from eedi_utils.data import SOURCE_COLUMN, CompetitionData, DataError, labelled
from eedi_utils.embedder import load_embedder
from eedi_utils.prior import PRIOR_FILE, read_prior
from eedi_utils.splits import config_folds
from eedi_utils.submission import read_submission, validate_submission
from eedi_utils.train.retriever.data import prepare_data
from eedi_utils.train.retriever.report import (
    score_model,
    tune_unseen_prior,
    validation_embeddings,
)
from eedi_utils.train.retriever.run import RetrieverTraining, mining_round


def tiny_config(model, **train) -> KitConfig:
    config = KitConfig()
    config.retrieval.show_progress = False
    config.evaluate.folds = 3
    config.train.base_model = str(model)
    config.train.batch_size = 8
    config.train.learning_rate = 1e-3
    config.train.mixed_precision = "no"
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


@pytest.fixture()
def recorded_mining(monkeypatch):
    """Record the rank range of every real call to the miner."""
    calls = []

    def recording(*args, **kwargs):
        calls.append(args[5])
        return original(*args, **kwargs)

    original = training.mine_negatives
    monkeypatch.setattr(training, "mine_negatives", recording)
    return calls


def test_negatives_are_remined_every_epoch_with_shrinking_ranges(
    sample, tiny_model, tmp_path, recorded_mining
) -> None:
    config = tiny_config(
        tiny_model, epochs=3, n_negatives=2, negative_ranges=[[1, 40], [1, 20], [1, 10]]
    )
    trainer = RetrieverTraining(CompetitionData(sample), tmp_path / "out", config)
    trainer.run()
    assert trainer.mining_calls == 3
    assert recorded_mining == [(1, 40), (1, 20), (1, 10)]
    rounds = [np.load(tmp_path / "out" / "negatives" / f"round-{i}.npy") for i in range(3)]
    assert not np.array_equal(rounds[0], rounds[1]) and not np.array_equal(rounds[1], rounds[2])
    for negatives in rounds:  # never the gold id, two different documents per row
        ids = trainer.data.document_ids[negatives]
        assert not (ids == trainer.data.gold[:, None]).any()
        assert (negatives[:, 0] != negatives[:, 1]).all()

    history = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert all({"map@25", "recall@25", "seen", "unseen"} <= set(h) for h in history)
    assert history[-1]["map@25"] != history[0]["map@25"]  # training changed the model
    assert (tmp_path / "out" / "training_curves.png").stat().st_size > 10_000
    assert (
        json.loads((tmp_path / "out" / "resolved_config.json").read_text())["train"]["epochs"] == 3
    )


def test_negatives_from_golds_never_picks_a_misconception_no_training_row_has(
    sample, tiny_model, tmp_path
) -> None:
    picked = {}
    for pool in ("all", "golds"):
        config = tiny_config(
            tiny_model, epochs=1, n_negatives=3, negative_ranges=[[1, 60]], negatives_from=pool
        )
        trainer = RetrieverTraining(CompetitionData(sample), tmp_path / pool, config)
        trainer.run()
        negatives = np.load(tmp_path / pool / "negatives" / "round-0.npy")
        ids = trainer.data.document_ids[negatives]
        assert not (ids == trainer.data.gold[:, None]).any()
        picked[pool] = set(ids.ravel().tolist())
    golds = set(trainer.data.gold.tolist())
    assert picked["golds"] <= golds
    assert picked["all"] - golds  # the sample has misconceptions no training row labels


@pytest.mark.parametrize(
    ("remine_every", "n_negatives", "expected"), [(2, 1, 2), (0, 1, 1), (1, 0, 0)]
)
def test_mining_schedule(
    sample, tiny_model, tmp_path, recorded_mining, remine_every, n_negatives, expected
) -> None:
    config = tiny_config(tiny_model, epochs=3, n_negatives=n_negatives, remine_every=remine_every)
    trainer = RetrieverTraining(CompetitionData(sample), tmp_path / "out", config)
    trainer.run()
    assert trainer.mining_calls == len(recorded_mining) == expected
    assert [mining_round(e, remine_every) for e in range(3)] == {
        2: [0, 0, 1],
        0: [0, 0, 0],
        1: [0, 1, 2],
    }[remine_every]


def test_cli_train_output_loads_in_predict(sample, tiny_model, tmp_path, capsys) -> None:
    config = tmp_path / "kit.toml"
    config.write_text(
        f"[retrieval]\nshow_progress = false\n[evaluate]\nfolds = 3\n"
        f'[train]\nbase_model = "{tiny_model}"\nbatch_size = 8\nn_negatives = 1\n'
        'mixed_precision = "no"\nloss = "cached_mnrl"\nmini_batch_size = 4\n'
    )
    out = tmp_path / "model"
    assert (
        main(
            [
                "train",
                "--data-dir",
                str(sample),
                "--output-dir",
                str(out),
                "--config",
                str(config),
                "--epochs",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["epoch"] == 1
    submission = tmp_path / "submission.csv"
    assert (
        main(
            [
                "predict",
                "--data-dir",
                str(sample),
                "--model",
                str(out),
                "--out",
                str(submission),
                "--quiet",
            ]
        )
        == 0
    )
    data = CompetitionData(sample)
    validate_submission(
        read_submission(submission), data.test(), set(data.misconceptions["MisconceptionId"])
    )


class Crash(TrainerCallback):
    """Simulates a run killed part-way through an epoch."""

    def __init__(self, at_step: int):
        self.at_step = at_step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at_step:
            raise KeyboardInterrupt("killed")


@pytest.mark.parametrize("lora_r", [0, 4], ids=["full", "lora"])
def test_run_killed_mid_epoch_resumes_from_last_checkpoint(
    sample, tiny_model, tmp_path, lora_r
) -> None:
    config = tiny_config(tiny_model, epochs=2, n_negatives=1, save_steps=3, lora_r=lora_r)
    data = CompetitionData(sample)
    out = tmp_path / "out"
    steps_per_epoch = (
        len(RetrieverTraining(data, out, config).data.queries) // config.train.batch_size + 1
    )
    crash_step = steps_per_epoch + 4  # inside epoch 2, after the checkpoint at a multiple of 3
    with pytest.raises(KeyboardInterrupt):
        RetrieverTraining(data, out, config, callbacks=[Crash(crash_step)]).run()
    last = max(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*"))
    assert steps_per_epoch < last < crash_step

    resumed = RetrieverTraining(data, out, config)
    resumed.run(resume=True)
    assert resumed.mining_calls == 0  # both rounds were mined before the crash and reused
    final = max(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*"))
    assert final == 2 * steps_per_epoch
    state = json.loads(
        (out / "checkpoints" / f"checkpoint-{final}" / "trainer_state.json").read_text()
    )
    logged_steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert logged_steps == sorted(set(logged_steps))  # no step trained twice
    assert [h["epoch"] for h in json.loads((out / "metrics.json").read_text())] == [0, 1, 2]
    assert (out / "model.safetensors").exists()  # a plain model, adapters merged


def write_generated_rows(sample, path, sources: dict[int, str]) -> None:
    """Copies of sample questions as 'generated' rows: new ids, SourceQuestionId as given."""
    questions = pd.read_csv(sample / "train.csv", dtype=str, keep_default_na=False)
    rows = questions[questions["QuestionId"].astype(int).isin(sources)].copy()
    rows[SOURCE_COLUMN] = rows["QuestionId"].astype(int).map(sources)
    rows["QuestionId"] = [str(1000 + i) for i in range(len(rows))]
    rows["ai_created"] = "True"
    rows.to_csv(path, index=False)


def test_generated_rows_join_training_but_never_from_validation(sample, tmp_path) -> None:
    data = CompetitionData(sample)
    config = KitConfig()
    config.evaluate.folds = 3
    base = prepare_data(data, config)
    train = labelled(data.train())
    fold = config_folds(train, config.evaluate)[0]
    val_question = int(train["QuestionId"].iloc[fold.val_rows[0]])
    train_question = int(train["QuestionId"].iloc[fold.train_rows[0]])
    orphan = int(train["QuestionId"].iloc[fold.train_rows[-1]])
    extra = tmp_path / "generated.csv"
    write_generated_rows(
        sample,
        extra,
        {val_question: str(val_question), train_question: str(train_question), orphan: ""},
    )
    config.train.extra_train_files = [str(extra)]
    joined = prepare_data(data, config)

    def labelled_count(question: int) -> int:
        return int((train["QuestionId"] == question).sum())

    added = labelled_count(train_question) + labelled_count(orphan)
    assert len(joined.queries) == len(base.queries) + added
    assert joined.val_queries == base.val_queries  # evaluation stays on real rows only
    assert np.array_equal(joined.val_gold, base.val_gold)


def test_generated_rows_need_their_source_column(sample, tmp_path) -> None:
    extra = tmp_path / "generated.csv"
    pd.read_csv(sample / "train.csv", dtype=str, keep_default_na=False).to_csv(extra, index=False)
    config = KitConfig()
    config.train.extra_train_files = [str(extra)]
    with pytest.raises(DataError, match="generated.csv, header, column SourceQuestionId"):
        prepare_data(CompetitionData(sample), config)


def test_negatives_take_the_rounds_text_of_each_misconception(sample, tiny_model, tmp_path) -> None:
    """With paraphrased names, a misconception has one text per round: when its paraphrase is
    a row's positive, its original name must not be another row's negative in that round
    (the no-duplicates sampler compares texts, so that would be a false negative)."""
    config = tiny_config(tiny_model, n_negatives=2)
    training = RetrieverTraining(CompetitionData(sample), tmp_path / "out", config)
    data = training.data
    data.variants = {int(i): [f"paraphrase of {i}"] for i in data.document_ids}
    negatives = np.stack([np.arange(len(data.gold)), np.arange(len(data.gold)) + 1], axis=1)
    for round_index in range(3):
        texts = data.round_texts(round_index, config.train.seed)
        chosen = {int(i): text for i, text in zip(data.document_ids, texts)}
        rows = training.dataset(negatives, round_index)
        assert rows["positive"] == [chosen[int(g)] for g in data.gold]
        for column in ("negative_1", "negative_2"):
            ids = data.document_ids[negatives[:, int(column[-1]) - 1]]
            assert rows[column] == [chosen[int(i)] for i in ids]
        assert any(text.startswith("paraphrase of") for text in texts)
        assert any(not text.startswith("paraphrase of") for text in texts)


def test_top_k_other_than_25_trains_and_reports_its_own_key(sample, tiny_model, tmp_path) -> None:
    config = tiny_config(tiny_model, epochs=1, n_negatives=0)
    config.retrieval.top_k = 50
    training = RetrieverTraining(CompetitionData(sample), tmp_path / "out", config)
    training.run()
    assert [h["epoch"] for h in training.history] == [0, 1]
    assert all("map@50" in h and "map@25" not in h for h in training.history)
    assert (tmp_path / "out" / "training_curves.png").exists()


def test_the_last_epoch_and_the_prior_score_the_model_as_predict_loads_it(
    sample, tiny_model, tmp_path, monkeypatch
) -> None:
    """Training keeps the weights as loaded for training (fp32 here); `eedi predict` loads the
    saved folder in [retrieval] dtype. The figures a run reports for its model (last epoch,
    prior table) are predict's, and the trained model is freed before that one is loaded."""
    config = tiny_config(tiny_model, epochs=2, n_negatives=0)
    config.retrieval.dtype = "bfloat16"
    trained = []

    def loading_alone(path, retrieval):  # the model in training is gone by now
        assert [ref() for ref in trained] == [None]
        return load_embedder(path, retrieval)

    def kept_reference(self, model, checkpoint):
        trained.append(weakref.ref(model))
        return original(self, model, checkpoint)

    original = RetrieverTraining.train_epochs
    monkeypatch.setattr(RetrieverTraining, "train_epochs", kept_reference)
    monkeypatch.setattr(training, "load_embedder", loading_alone)
    run = RetrieverTraining(CompetitionData(sample), tmp_path / "out", config)
    model = run.run()
    assert next(model.parameters()).dtype == torch.bfloat16
    history = json.loads((tmp_path / "out" / "metrics.json").read_text())
    saved = f"{training.SCORED_AS_SAVED} (torch.bfloat16, cpu)"
    assert [(h["epoch"], h["scored"]) for h in history] == [
        (0, training.SCORED_IN_TRAINING),
        (1, training.SCORED_IN_TRAINING),
        (2, saved),
    ]
    loaded = load_embedder(tmp_path / "out", config.retrieval)
    report = json.loads(json.dumps(score_model(loaded, run.data, config)))
    assert history[-1] == {"epoch": 2, "scored": saved, **report}
    embeddings = validation_embeddings(loaded, run.data, config)
    tuned = tune_unseen_prior(*embeddings, run.data, config)
    stored = json.loads((tmp_path / "out" / PRIOR_FILE).read_text())
    assert stored["tuning"] == json.loads(json.dumps(tuned.table))

    # Resuming the finished run scores the saved model again: still one row per epoch.
    monkeypatch.setattr(training, "load_embedder", load_embedder)
    trained.clear()
    again = RetrieverTraining(CompetitionData(sample), tmp_path / "out", config)
    again.run(resume=True)
    assert [(h["epoch"], h["scored"]) for h in again.history] == [
        (h["epoch"], h["scored"]) for h in history
    ]

    # Settings predict could not load the model with stop a run with validation rows at once;
    # a run without any scores nothing and loads nothing again.
    config.retrieval.load_in_bits = 4
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        RetrieverTraining(CompetitionData(sample), tmp_path / "bits", config)
    config.train.val_fold, config.retrieval.unseen_prior = -1, 0.05

    def never(path, retrieval):
        raise AssertionError("a run without validation rows loads its model again")

    monkeypatch.setattr(training, "load_embedder", never)
    final = RetrieverTraining(CompetitionData(sample), tmp_path / "final", config)
    final.run()
    assert final.history == [] and read_prior(tmp_path / "final").strength == 0.05


def cli_train(sample, model, out, config, *flags: str) -> int:
    return main(
        ["train", "--data-dir", str(sample), "--output-dir", str(out), "--config", str(config)]
        + ["--quiet", *flags]
    )


def test_a_fresh_run_into_a_non_empty_folder_is_refused(sample, tiny_model, tmp_path, capsys):
    config = tmp_path / "kit.toml"
    config.write_text(
        f'[evaluate]\nfolds = 3\n[train]\nbase_model = "{tiny_model}"\nbatch_size = 8\n'
        'epochs = 1\nn_negatives = 1\nmixed_precision = "no"\n'
    )
    out = tmp_path / "model"
    assert cli_train(sample, tiny_model, out, config) == 0
    assert (out / "negatives" / "round-0.npy").exists() and (out / "checkpoints").is_dir()
    weights = (out / "model.safetensors").read_bytes()
    capsys.readouterr()

    assert cli_train(sample, tiny_model, out, config) == 2  # the same fresh run again
    error = capsys.readouterr().err
    assert str(out) in error and "--resume" in error and "--overwrite-output-dir" in error
    assert "Traceback" not in error and error.startswith("eedi: error: ")
    assert (out / "model.safetensors").read_bytes() == weights  # nothing touched
    assert cli_train(sample, tiny_model, out, config, "--resume", "--overwrite-output-dir") == 2
    # the notebook's way in: RetrieverTraining.run itself refuses
    with pytest.raises(training.OutputDirNotEmpty, match="RESUME or OVERWRITE_OUTPUT_DIR"):
        RetrieverTraining(CompetitionData(sample), out, tiny_config(tiny_model, epochs=1)).run()
    # a folder that holds no training run is never cleared, even when asked
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert cli_train(sample, tiny_model, tmp_path / "other", config, "--overwrite-output-dir") == 2
    assert "holds no training run" in capsys.readouterr().err
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_overwrite_clears_the_earlier_run_and_trains_from_scratch(
    sample, tiny_model, tmp_path, monkeypatch
) -> None:
    data, out = CompetitionData(sample), tmp_path / "out"
    RetrieverTraining(data, out, tiny_config(tiny_model, epochs=2, n_negatives=1)).run()
    steps = {int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*")}
    per_epoch = min(steps)
    assert steps == {per_epoch, 2 * per_epoch}
    (out / "notes.txt").write_text("left by the earlier run")

    resumed_from, started_from = [], []

    class Recording(training.SentenceTransformerTrainer):
        def train(self, resume_from_checkpoint=None, **kwargs):
            resumed_from.append(resume_from_checkpoint)
            return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    monkeypatch.setattr(training, "SentenceTransformerTrainer", Recording)
    fresh = RetrieverTraining(data, out, tiny_config(tiny_model, epochs=2, n_negatives=1))
    original = fresh.starting_model
    monkeypatch.setattr(fresh, "starting_model", lambda c: started_from.append(c) or original(c))
    fresh.run(overwrite=True)

    assert started_from == [None]  # the base model, not a checkpoint of the earlier run
    first = out / "checkpoints" / f"checkpoint-{per_epoch}"
    # epoch 2 goes on from this run's epoch 1, never from the earlier run's last checkpoint
    assert resumed_from == [None, str(first)]
    assert fresh.mining_calls == 2  # no negatives of the earlier run reused
    assert sorted(p.name for p in (out / "negatives").glob("*.npy")) == [
        "round-0.npy",
        "round-1.npy",
    ]
    assert not (out / "notes.txt").exists()
    assert [h["epoch"] for h in json.loads((out / "metrics.json").read_text())] == [0, 1, 2]
    assert json.loads((out / "resolved_config.json").read_text())["train"]["epochs"] == 2
    assert (out / "model.safetensors").exists()


def test_negatives_made_another_way_are_mined_again(
    sample, tiny_model, tmp_path, recorded_mining, caplog
) -> None:
    data, out = CompetitionData(sample), tmp_path / "out"
    config = tiny_config(tiny_model, epochs=2, n_negatives=1, remine_every=0)
    steps_per_epoch = len(RetrieverTraining(data, out, config).data.queries) // 8 + 1
    with pytest.raises(KeyboardInterrupt):  # killed in epoch 2, after round 0 was mined
        RetrieverTraining(data, out, config, callbacks=[Crash(steps_per_epoch + 1)]).run()
    assert np.load(out / "negatives" / "round-0.npy").shape[1] == 1

    changed = tiny_config(tiny_model, epochs=2, n_negatives=2, remine_every=0)
    resumed = RetrieverTraining(data, out, changed)
    with caplog.at_level("WARNING", logger="eedi_utils.train.retriever.run"):
        resumed.run(resume=True)
    assert resumed.mining_calls == 1  # the 1-negative file was not used for 2 negatives
    assert np.load(out / "negatives" / "round-0.npy").shape[1] == 2
    (line,) = [r.getMessage() for r in caplog.records if "not reused" in r.getMessage()]
    assert "round-0.npy" in line and "[train] n_negatives 1 -> 2" in line

    # through mine() itself: same record reused; no record, other rows: mined again
    caplog.clear()
    model = resumed.starting_model(None)
    calls = resumed.mining_calls
    resumed.mine(model, 0)
    assert resumed.mining_calls == calls
    (out / "negatives" / "round-0.json").unlink()
    with caplog.at_level("WARNING", logger="eedi_utils.train.retriever.run"):
        resumed.mine(model, 0)
    assert resumed.mining_calls == calls + 1
    assert "no record of what made them" in caplog.text
    changed.train.val_fold = 1
    other_rows = RetrieverTraining(data, out, changed)
    with caplog.at_level("WARNING", logger="eedi_utils.train.retriever.run"):
        other_rows.mine(model, 0)
    assert other_rows.mining_calls == 1 and "the training rows or their texts" in caplog.text
