"""`eedi train-reranker`: the prompts, the loss, its agreement with the [rerank] stage's scores,
learning on a synthetic task, and the whole command on the bundled sample.

The learnable task: every gold misconception's name starts with the word "zebra", no other
candidate's does; a reranker that learns to pick the letter (listwise) or say Yes (pointwise)
for it ranks held-out rows whose golds it never saw in training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer, LlamaForCausalLM, TrainingArguments

from eedi_utils.config import RerankConfig
from eedi_utils.metrics import map_at_k
from eedi_utils.rerank.backends import (
    TransformersBackend,
    chat_ids,
    next_token_logits,
    single_token_ids,
)
from eedi_utils.rerank.prompts import LABELS, YES_NO, pointwise_messages
from eedi_utils.rerank.scoring import rerank
from eedi_utils.train.reranker.examples import listwise_examples, pointwise_groups
from eedi_utils.train.reranker.loss import (
    ChoiceTrainer,
    ListwiseCollator,
    PointwiseCollator,
    listwise_loss,
)

WORDS = [
    "fraction",
    "decimal",
    "angle",
    "ratio",
    "area",
    "volume",
    "factor",
    "prime",
    "mean",
    "median",
    "graph",
    "number",
    "sign",
    "square",
    "root",
    "index",
    "power",
    "place",
    "value",
    "digit",
    "column",
    "order",
    "negative",
    "positive",
]


def synthetic_task(n_rows: int, n_candidates: int, seed: int):
    """Rows (with their gold), candidate ids (gold first, then decoys) and names: golds are
    'zebra ...', decoys are not; rows and names are drawn fresh for each seed."""
    rng = np.random.default_rng(seed)
    names, rows, ranked = {}, [], []
    for r in range(n_rows):
        gold = 1000 * seed + 100 * r
        names[gold] = "zebra " + " ".join(rng.choice(WORDS, 3))
        decoys = [gold + 1 + d for d in range(n_candidates - 1)]
        for d in decoys:
            names[d] = " ".join(rng.choice(WORDS, 4))
        rows.append(
            {
                "SubjectName": "Number",
                "ConstructName": " ".join(rng.choice(WORDS, 3)),
                "QuestionText": "What is " + " ".join(rng.choice(WORDS, 4)) + "?",
                "CorrectText": str(rng.integers(100)),
                "AnswerText": str(rng.integers(100)),
                "MisconceptionId": gold,
            }
        )
        order = [gold, *decoys]
        rng.shuffle(order)
        ranked.append(order)
    return pd.DataFrame(rows), np.array(ranked), names


def reranked_map(folder: Path, mode: str, rows, ranked, names) -> float:
    config = RerankConfig(
        model=str(folder), mode=mode, windows=[[1, ranked.shape[1]]], reverse_pass=False,
        dtype="float32", batch_size=16,
    )  # fmt: skip
    misconceptions = pd.DataFrame(
        {"MisconceptionId": list(names), "MisconceptionName": list(names.values())}
    )
    backend = TransformersBackend(folder, config)
    result = rerank(rows, ranked, misconceptions, backend, config)
    return float(map_at_k(result, rows["MisconceptionId"].to_numpy(), ranked.shape[1]))


def parse_options(tokenizer, prompt: list[int]) -> list[str]:
    text = tokenizer.decode(prompt)
    return [line[3:] for line in text.splitlines() if line[:1] in LABELS and line[1:3] == ". "]


def test_listwise_prompts_hold_the_gold_once_at_its_letter(tiny_llm: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm)
    rows, ranked, names = synthetic_task(40, 8, seed=3)
    missed = ranked.copy()
    missed[:20] = np.where(
        missed[:20] == rows["MisconceptionId"].to_numpy()[:20, None], -1, missed[:20]
    )
    names[-1] = "a decoy the retriever ranked instead of the gold"
    examples = listwise_examples(rows, missed, names, tokenizer, [3, 5, 8], 2048, seed=0)
    assert len(examples) == 40
    positions = set()
    for example, (_, row), candidates in zip(examples, rows.iterrows(), missed):
        options = parse_options(tokenizer, example.input_ids)
        assert len(options) == example.n_choices and example.n_choices in (3, 5, 8)
        gold_name = names[row["MisconceptionId"]]
        assert options.count(gold_name) == 1 and options[example.label] == gold_name
        decoys = [names[int(i)] for i in candidates if i != row["MisconceptionId"]]
        assert [o for o in options if o != gold_name] == decoys[: example.n_choices - 1]
        positions.add(example.label)
    assert len(positions) >= 5  # the gold's letter varies


def test_pointwise_groups_put_the_gold_first(tiny_llm: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm)
    rows, ranked, names = synthetic_task(5, 8, seed=4)
    groups = pointwise_groups(rows, ranked, names, tokenizer, 4, 2048)
    for group, (_, row), candidates in zip(groups, rows.iterrows(), ranked):
        decoys = [int(i) for i in candidates if i != row["MisconceptionId"]][:3]
        expected = [chat_ids(tokenizer, pointwise_messages(row, names[i]))
                    for i in [row["MisconceptionId"], *decoys]]  # fmt: skip
        assert group.prompts == expected
    with pytest.raises(ValueError, match="group_size 9"):
        pointwise_groups(rows, ranked, names, tokenizer, 9, 2048)


def test_training_scores_are_the_rerank_stage_scores(tiny_llm: Path) -> None:
    """The loss's letter logits, softmaxed over the list, are the transformers backend's
    log-probabilities of the same prompts (left-padded batch, one forward)."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm)
    rows, ranked, names = synthetic_task(6, 8, seed=5)
    examples = listwise_examples(rows, ranked, names, tokenizer, [3, 8], 2048, seed=1)
    backend = TransformersBackend(tiny_llm, RerankConfig(dtype="float32"))
    batch = ListwiseCollator(tokenizer.eos_token_id)(examples)
    letters = single_token_ids(tokenizer, LABELS)
    with torch.no_grad():  # the forward of ChoiceTrainer.compute_loss, one padded batch
        logits = next_token_logits(backend.model, batch["input_ids"], batch["attention_mask"])
    for row, example in enumerate(examples):
        training = logits[row, letters[: example.n_choices]].log_softmax(-1).numpy()
        stage = backend.choice_logprobs([example.input_ids], letters[: example.n_choices])[0]
        np.testing.assert_allclose(training, stage, atol=1e-4)
    loss = listwise_loss(logits, letters, batch)
    by_hand = -np.mean(
        [
            backend.choice_logprobs([e.input_ids], letters[: e.n_choices])[0][e.label]
            for e in examples
        ]
    )
    assert float(loss) == pytest.approx(by_hand, abs=1e-4)


def train_choice_model(folder: Path, out: Path, mode: str, examples, steps: int, lr: float):
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32)
    if mode == "listwise":
        collator, ids = (
            ListwiseCollator(tokenizer.eos_token_id),
            single_token_ids(tokenizer, LABELS),
        )
    else:
        collator = PointwiseCollator(tokenizer.eos_token_id)
        ids = single_token_ids(tokenizer, YES_NO)
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"), max_steps=steps, per_device_train_batch_size=8,
        learning_rate=lr, warmup_steps=0.1, logging_steps=5, save_strategy="no",
        report_to="none", remove_unused_columns=False, use_cpu=True, seed=0,
    )  # fmt: skip
    trainer = ChoiceTrainer(
        model=model, args=args, train_dataset=examples, data_collator=collator, mode=mode,
        token_ids=ids,
    )  # fmt: skip
    trainer.train()
    trainer.model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return [e["loss"] for e in trainer.state.log_history if "loss" in e]


@pytest.fixture(scope="module")
def pointwise_reranker(tiny_llm: Path, tmp_path_factory: pytest.TempPathFactory):
    """tiny_llm trained pointwise on 64 synthetic rows: its folder, losses and prompt groups."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm)
    rows, ranked, names = synthetic_task(64, 8, seed=1)
    groups = pointwise_groups(rows, ranked, names, tokenizer, 4, 2048)
    out = tmp_path_factory.mktemp("pointwise")
    losses = train_choice_model(tiny_llm, out, "pointwise", groups, 60, 3e-3)
    return out, losses, groups


def test_pointwise_reranker_learns_and_ranks_unseen_golds(tiny_llm: Path, pointwise_reranker):
    trained, losses, _ = pointwise_reranker
    held_rows, held_ranked, held_names = synthetic_task(32, 8, seed=2)  # other golds
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:2])
    before = reranked_map(tiny_llm, "pointwise", held_rows, held_ranked, held_names)
    after = reranked_map(trained, "pointwise", held_rows, held_ranked, held_names)
    print(f"pointwise held-out MAP {before:.2f} -> {after:.2f},", end=" ")
    print(f"loss {losses[0]:.2f} -> {losses[-1]:.4f}")
    assert before < 0.5 and after > 0.9, (before, after)


def test_gptq_reranker_is_4_bit_and_ranks_as_the_trained_one(
    pointwise_reranker, tmp_path: Path
) -> None:
    """The trained reranker quantised with AutoRound (calibrated on its own training prompts):
    its linear layers are packed 4-bit GPTQ weights, and the [rerank] stage's transformers
    backend, loading it through AutoRound's kernels, ranks held-out rows as the fp32 one."""
    from safetensors import safe_open

    from eedi_utils.train.reranker.quantize import calibration_windows, quantize_gptq

    trained, _, groups = pointwise_reranker
    prompts = [prompt for group in groups for prompt in group.prompts]
    windows = calibration_windows(prompts, 128, 16, seed=0)
    target = quantize_gptq(trained, tmp_path / "model-gptq", windows, 4, 64, iters=20)
    config = json.loads((target / "config.json").read_text())["quantization_config"]
    assert (config["quant_method"], config["bits"], config["group_size"]) == ("gptq", 4, 64)
    assert config["sym"] and not config["desc_act"]
    with safe_open(str(next(target.glob("*.safetensors"))), "pt") as weights:
        keys = set(weights.keys())
        packed = weights.get_tensor("model.layers.0.mlp.down_proj.qweight")
    for layer in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.o_proj", "mlp.up_proj"):
        assert f"model.layers.1.{layer}.qweight" in keys
        assert f"model.layers.1.{layer}.weight" not in keys
    assert packed.dtype == torch.int32 and packed.shape == (128 // 8, 64)  # 8 weights an int32
    assert (target / "chat_template.jinja").exists() or "chat_template" in json.loads(
        (target / "tokenizer_config.json").read_text()
    )
    held_rows, held_ranked, held_names = synthetic_task(32, 8, seed=2)
    full = reranked_map(trained, "pointwise", held_rows, held_ranked, held_names)
    quantized = reranked_map(target, "pointwise", held_rows, held_ranked, held_names)
    print(f"held-out MAP fp32 {full:.3f}, GPTQ 4-bit {quantized:.3f}", end=" ")
    assert quantized > 0.9 and quantized >= full - 0.05, (full, quantized)
    if not torch.cuda.is_available():  # fp32 asked on a CPU: bf16, not AutoRound's slow fp16
        backend = TransformersBackend(target, RerankConfig(dtype="float32"))
        assert backend.model.dtype == torch.bfloat16


def test_calibration_windows_are_consecutive_tokens_of_the_prompts() -> None:
    from eedi_utils.train.reranker.quantize import calibration_windows

    prompts = [[p * 100 + t for t in range(30 + p)] for p in range(10)]
    windows = calibration_windows(prompts, 16, 5, seed=3)
    assert [w.shape for w in windows] == [torch.Size([1, 16])] * 5
    stream = torch.cat(windows, 1)[0].tolist()
    starts = [i for i, token in enumerate(stream) if token % 100 == 0]
    for a, b in zip(starts, starts[1:]):  # whole prompts, end to end, in some order
        assert stream[a:b] == prompts[stream[a] // 100]
    assert len(calibration_windows(prompts, 16, 1000, seed=3)) == sum(map(len, prompts)) // 16
    with pytest.raises(ValueError, match="quantize_seqlen 4096"):
        calibration_windows(prompts, 4096, 5, seed=3)


def test_listwise_loss_falls_and_the_reranker_fits_its_rows(tiny_llm: Path, tmp_path: Path) -> None:
    """A 2-layer model must bind each letter to its line, which takes it longer than a CPU test
    allows to generalise; here it learns its own rows (loss and MAP)."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm)
    rows, ranked, names = synthetic_task(32, 5, seed=6)
    examples = listwise_examples(rows, ranked, names, tokenizer, [5], 2048, seed=0)
    losses = train_choice_model(tiny_llm, tmp_path / "listwise", "listwise", examples, 100, 3e-3)
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:2])
    as_trained = []  # the candidates in each training prompt's order: the same prompts again
    for example, (_, row), candidates in zip(examples, rows.iterrows(), ranked):
        decoys = [int(i) for i in candidates if i != row["MisconceptionId"]]
        decoys.insert(example.label, row["MisconceptionId"])
        as_trained.append(decoys)
    as_trained = np.array(as_trained)
    before = reranked_map(tiny_llm, "listwise", rows, as_trained, names)
    after = reranked_map(tmp_path / "listwise", "listwise", rows, as_trained, names)
    print(f"listwise own-rows MAP {before:.2f} -> {after:.2f},", end=" ")
    print(f"loss {losses[0]:.2f} -> {losses[-1]:.2f}")
    assert after > before + 0.2, (before, after)


def test_candidates_come_from_the_retriever_that_never_saw_the_row(
    sample: Path, tiny_model: Path, tmp_path: Path
) -> None:
    from eedi_utils import pipeline
    from eedi_utils.config import load_config
    from eedi_utils.data import CompetitionData, labelled
    from eedi_utils.embedder import default_model_path
    from eedi_utils.splits import config_folds
    from eedi_utils.train.reranker.candidates import out_of_fold_candidates

    data = CompetitionData(sample)
    retrievers = [str(tiny_model), str(default_model_path())]
    config = load_config(
        None, {"train_reranker": {"retrievers": retrievers, "top_n": 30}, "evaluate": {"folds": 2}}
    )
    config.retrieval.show_progress = False
    ranked = out_of_fold_candidates(data, config, tmp_path)
    train = labelled(data.train())
    for fold, retriever in zip(config_folds(train, config.evaluate), retrievers):
        alone = config_with(config, top_k=30)
        rows = train.iloc[fold.val_rows].reset_index(drop=True)
        expected = pipeline.rank_misconceptions(rows, data, [retriever], alone, fold.seen_ids)
        np.testing.assert_array_equal(ranked[fold.val_rows], expected)
    saved = (tmp_path / "candidates.npz").stat().st_mtime_ns
    np.testing.assert_array_equal(out_of_fold_candidates(data, config, tmp_path), ranked)
    assert (tmp_path / "candidates.npz").stat().st_mtime_ns == saved  # reused, not re-ranked
    config.train_reranker.retrievers = retrievers * 2
    with pytest.raises(ValueError, match="4 folders for 2 folds"):
        out_of_fold_candidates(data, config, tmp_path)


def test_an_unfinished_fold_retriever_is_not_silently_picked_up(
    sample: Path, tiny_model: Path, tmp_path: Path
) -> None:
    from eedi_utils.config import KitConfig
    from eedi_utils.data import CompetitionData, labelled
    from eedi_utils.splits import config_folds
    from eedi_utils.train.reranker.candidates import fold_retrievers

    data = CompetitionData(sample)
    config = KitConfig()
    config.evaluate.folds, config.train.base_model = 2, str(tiny_model)
    folds = config_folds(labelled(data.train()), config.evaluate)
    stale = tmp_path / "retrievers" / "fold-0"
    (stale / "negatives").mkdir(parents=True)
    np.save(stale / "negatives" / "round-0.npy", np.zeros((3, 1), np.int64))
    with pytest.raises(ValueError, match="unfinished retriever run of fold 0") as raised:
        fold_retrievers(data, folds, config, tmp_path)
    assert "--val-fold 0" in str(raised.value) and "--resume" in str(raised.value)


def test_fold_retrievers_must_have_held_out_their_fold(tiny_model: Path, tmp_path: Path) -> None:
    """One fine-tuned retriever reused for every fold, or folds out of order, gave in-fold
    candidates; each retriever's resolved_config.json is now checked."""
    import json
    import shutil

    from eedi_utils.config import KitConfig
    from eedi_utils.train.reranker.candidates import check_fold_retrievers

    config = KitConfig()
    config.evaluate.folds = 2
    folders = []
    for fold in (0, 1):
        folder = tmp_path / f"fold-{fold}"
        shutil.copytree(tiny_model, folder)
        resolved = KitConfig().to_dict()
        resolved["train"]["val_fold"], resolved["evaluate"]["folds"] = fold, 2
        (folder / "resolved_config.json").write_text(json.dumps(resolved))
        folders.append(str(folder))
    check_fold_retrievers(folders, config)  # in order: fine
    check_fold_retrievers([str(tiny_model)] * 2, config)  # trained on no train row: fine
    with pytest.raises(ValueError, match=r"fold 1: .*fold-0 held out fold 0"):
        check_fold_retrievers([folders[0]] * 2, config)
    with pytest.raises(ValueError, match=r"fold 0: .*fold-1 held out fold 1"):
        check_fold_retrievers(folders[::-1], config)
    config.evaluate.folds = 5
    with pytest.raises(ValueError, match="of 2 folds grouped by ConstructId"):
        check_fold_retrievers(folders, config)


def test_fold_retrievers_left_from_another_split_are_refused(
    sample: Path, tiny_model: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    from eedi_utils.config import KitConfig
    from eedi_utils.data import CompetitionData, labelled
    from eedi_utils.splits import config_folds
    from eedi_utils.train.reranker.candidates import fold_retrievers

    data = CompetitionData(sample)
    config = KitConfig()
    config.evaluate.folds = 2
    folds = config_folds(labelled(data.train()), config.evaluate)
    for fold in (0, 1):  # finished retrievers of a 5-fold split, as an earlier run left them
        folder = tmp_path / "retrievers" / f"fold-{fold}"
        shutil.copytree(tiny_model, folder)
        resolved = KitConfig().to_dict()
        resolved["train"]["val_fold"] = fold
        (folder / "resolved_config.json").write_text(json.dumps(resolved))
    with pytest.raises(ValueError, match="held out fold 0 of 5 folds"):
        fold_retrievers(data, folds, config, tmp_path)


def config_with(config, **retrieval):
    import copy

    copied = copy.deepcopy(config)
    for key, value in retrieval.items():
        setattr(copied.retrieval, key, value)
    return copied


def test_eedi_train_reranker_saves_a_model_the_rerank_stage_loads(
    sample: Path, tiny_llm: Path, tmp_path: Path
) -> None:
    from eedi_utils import pipeline
    from eedi_utils.cli import main
    from eedi_utils.config import load_config
    from eedi_utils.data import CompetitionData
    from eedi_utils.embedder import default_model_path
    from eedi_utils.train.reranker.run import METRICS_FILE

    out = tmp_path / "reranker"
    code = main([
        "train-reranker", "--quiet", "--data-dir", str(sample), "--output-dir", str(out),
        "--train-reranker-base-model", str(tiny_llm),
        "--train-reranker-retrievers", f'["{default_model_path()}"]',  # trained on no train row
        "--train-reranker-mode", "pointwise", "--train-reranker-group-size", "4",
        "--train-reranker-lora-r", "4", "--train-reranker-batch-size", "4",
        "--train-reranker-gradient-accumulation-steps", "1",
        "--train-reranker-save-dtype", "float32",
        "--rerank-windows", "[[1, 4]]", "--no-rerank-reverse-pass", "--rerank-dtype", "float32",
        "--rerank-tensor-parallel-size", "1",  # the tiny model's 64 features: served on one GPU
        "--folds", "3",
        "--train-reranker-quantize-bits", "4", "--train-reranker-quantize-group-size", "64",
        "--train-reranker-quantize-iters", "2",
        "--train-reranker-quantize-samples", "4", "--train-reranker-quantize-seqlen", "64",
    ])  # fmt: skip
    assert code == 0
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert set(metrics["reports"]) == {"retrieval", "before", "after", "quantized"}
    for report in metrics["reports"].values():
        assert {"seen", "unseen", "unseen_share", "map@25_lb"} <= set(report)
    assert metrics["training_losses"] and metrics["training_prompts"] > 10
    assert (out / "adapter" / "adapter_config.json").exists()
    assert not list((out / "model").glob("adapter*"))  # merged: a plain folder
    assert json.loads((out / "model-gptq" / "config.json").read_text())["quantization_config"]
    for model in ("model", "model-gptq"):
        config = load_config(None, {"rerank": {
            "enabled": True, "model": str(out / model), "mode": "pointwise", "windows": [[1, 4]],
            "separate_process": False, "dtype": "float32", "backend": "transformers",
        }})  # fmt: skip
        config.retrieval.show_progress = False
        submission = pipeline.predict(
            CompetitionData(sample), tmp_path / f"{model}.csv", None, config
        )
        assert submission.exists()


@pytest.mark.parametrize("bits", [4, 8])
def test_the_gptq_folder_is_one_vllm_runs_on_marlin_on_a_t4(bits, tmp_path, sample) -> None:
    """vLLM 0.19.1 runs a checkpoint with `gptq_marlin` (`get_min_capability` 75: a T4) when
    `quantization` is unset and `GPTQMarlinConfig.is_gptq_marlin_compatible` holds
    (vllm/model_executor/layers/quantization/gptq_marlin.py): quant_method "gptq"; bits,
    group_size, sym and desc_act all present; (bits, sym) in TYPE_MAP, (4, True) or (8, True);
    the group size among Marlin's (utils/marlin_utils.py MARLIN_SUPPORTED_GROUP_SIZES: -1, 32,
    64, 128). `train-reranker`'s GPTQ folder, at its default group size, meets it."""
    from tiny_models import sample_corpus, tiny_vllm_lm

    from eedi_utils.config import RerankerTrainConfig
    from eedi_utils.train.reranker.quantize import calibration_windows, quantize_gptq

    model = tiny_vllm_lm(tmp_path / "lm", sample_corpus(sample))
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    prompts = [tokenizer(text)["input_ids"] for text in sample_corpus(sample)[:64]]
    group_size = RerankerTrainConfig().quantize_group_size
    windows = calibration_windows(prompts, 64, 4, seed=0)
    target = quantize_gptq(model, tmp_path / "gptq", windows, bits, group_size, iters=0)
    config = json.loads((target / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "gptq"
    assert all(config.get(key) is not None for key in ("bits", "group_size", "sym", "desc_act"))
    assert (config["bits"], config["sym"]) == (bits, True)
    assert config["group_size"] in (-1, 32, 64, 128) and config["desc_act"] is False


def test_the_quantiser_and_its_model_are_freed_before_quantize_gptq_returns(
    tiny_llm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train-reranker` evaluates right after quantising: AutoRound's object and the model it
    loaded (auto-round 0.16.1, `compressors/base.py`: `self.model`, also returned by
    `quantize_and_save`) are gone when `quantize_gptq` returns, reference cycles included
    (the collector is off during the call, so only an explicit release frees them)."""
    import gc
    import weakref

    import auto_round

    from eedi_utils.train.reranker.quantize import quantize_gptq

    made: list[weakref.ref] = []
    real = auto_round.AutoRound

    def recorded(*args, **kwargs):
        quantizer = real(*args, **kwargs)
        made.extend([weakref.ref(quantizer), weakref.ref(quantizer.model)])
        return quantizer

    monkeypatch.setattr(auto_round, "AutoRound", recorded)
    windows = [torch.randint(100, 1000, (1, 32)) for _ in range(2)]
    gc.disable()
    try:
        quantize_gptq(tiny_llm, tmp_path / "model-gptq", windows, 4, 64, iters=0)
        alive = [ref() is not None for ref in made]
    finally:
        gc.enable()
    assert len(made) == 2 and alive == [False, False]
