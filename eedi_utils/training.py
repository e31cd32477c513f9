"""Fine-tune a retriever: sentence-transformers' trainer, MNRL, no-duplicate batches, hard
negatives re-mined from the current model, optional LoRA, DDP through accelerate/torchrun.

Re-mining runs between epochs: each epoch is one `trainer.train()` call that resumes from the
previous epoch's checkpoint (optimizer, scheduler and step restored by the library) on a
dataset carrying freshly mined negatives, and stops at the epoch's end. So the refresh happens
in plain code that tests can count, never in a callback hook that may silently not fire, and
`--resume` is the same mechanism.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from accelerate import PartialState
from datasets import Dataset
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.sentence_transformer import losses, modules
from sentence_transformers.sentence_transformer.training_args import BatchSamplers
from transformers import AutoConfig, PrinterCallback, TrainerCallback

from eedi_utils.config import KitConfig, TrainConfig
from eedi_utils.data import (
    GENERATED_COLUMN,
    SOURCE_COLUMN,
    CompetitionData,
    DataError,
    labelled,
    load_questions,
    to_long,
)
from eedi_utils.kaggle_env import resolve_input_path
from eedi_utils.metrics import score_report
from eedi_utils.mining import mine_negatives
from eedi_utils.plots import plot_training
from eedi_utils.retrieval import (
    default_model_path,
    encode,
    fused_top_k,
    resolve_device,
    resolve_dtype,
)
from eedi_utils.splits import question_folds
from eedi_utils.text import misconception_texts, query_texts

logger = logging.getLogger(__name__)

DECODER_TYPES = {"qwen2", "qwen3", "mistral", "llama", "gemma", "gemma2", "phi3"}
LORA_TARGETS = {
    "bert": ["query", "key", "value", "dense"],
    "xlm-roberta": ["query", "key", "value", "dense"],
    "new": ["qkv_proj", "o_proj", "up_gate_proj", "down_proj"],
}
DECODER_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def lora_targets(model_type: str, configured: list[str]) -> list[str] | str:
    """Modules LoRA adapts: the config's, else a known set per architecture, else all linear."""
    if configured:
        return configured
    if model_type in DECODER_TYPES:
        return DECODER_LORA_TARGETS
    return LORA_TARGETS.get(model_type, "all-linear")


def build_model(config: TrainConfig, max_seq_length: int, device: str) -> SentenceTransformer:
    """Load the base model (a sentence-transformers folder, or a plain transformers folder
    given a pooling layer), add LoRA if asked."""
    path = resolve_input_path(config.base_model) if config.base_model else default_model_path()
    model_kwargs = {}
    if config.load_in_4bit:
        if not device.startswith("cuda"):
            raise ValueError("load_in_4bit (QLoRA) needs a CUDA GPU with bitsandbytes")
        from transformers import BitsAndBytesConfig

        model_kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=resolve_dtype("auto", device),
        )
    if (path / "modules.json").exists():
        model = SentenceTransformer(
            str(path), device=device, local_files_only=True, model_kwargs=model_kwargs
        )
    else:
        model_type = AutoConfig.from_pretrained(path, local_files_only=True).model_type
        pooling = config.pooling
        if pooling == "auto":
            pooling = "lasttoken" if model_type in DECODER_TYPES else "mean"
        transformer = modules.Transformer(
            str(path), max_seq_length=max_seq_length, model_kwargs=model_kwargs
        )
        if transformer.tokenizer.pad_token is None:
            transformer.tokenizer.pad_token = transformer.tokenizer.eos_token
        model = SentenceTransformer(
            modules=[
                transformer,
                modules.Pooling(transformer.get_embedding_dimension(), pooling),
                modules.Normalize(),
            ],
            device=device,
        )
    model.max_seq_length = min(max_seq_length, model.max_seq_length or max_seq_length)
    if config.lora_r:
        from peft import LoraConfig, TaskType

        model_type = model[0].auto_model.config.model_type
        model.add_adapter(
            LoraConfig(
                task_type=TaskType.FEATURE_EXTRACTION,
                r=config.lora_r,
                lora_alpha=config.lora_alpha or 2 * config.lora_r,
                lora_dropout=config.lora_dropout,
                target_modules=lora_targets(model_type, config.lora_target_modules),
            )
        )
    return model


def merge_lora(model: SentenceTransformer) -> SentenceTransformer:
    """Fold LoRA adapters into the base weights, so the saved folder is a plain model that
    loads anywhere without peft."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    transformer = model[0].auto_model
    for name, layer in list(transformer.named_modules()):
        if isinstance(layer, BaseTunerLayer):
            layer.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(transformer.get_submodule(parent_name), child, layer.get_base_layer())
    if getattr(transformer, "_hf_peft_config_loaded", False):
        transformer._hf_peft_config_loaded = False  # save_pretrained would write only adapters
        del transformer.peft_config
    return model


def mixed_precision_flags(config: TrainConfig, device: str) -> dict[str, bool]:
    """bf16/fp16 flags for the trainer: 'auto' uses bf16 only where it runs natively."""
    choice = config.mixed_precision
    if choice == "auto":
        dtype = resolve_dtype("auto", device)
        choice = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "no")
    if choice not in ("bf16", "fp16", "no"):
        raise ValueError(f"mixed_precision must be auto, bf16, fp16 or no, got {choice!r}")
    return {"bf16": choice == "bf16", "fp16": choice == "fp16"}


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
    variants: dict[int, list[str]] = field(default_factory=dict)
    """LLM-written document texts by misconception id, used as positives beside the original."""

    def positives(self, round_index: int = 0, seed: int = 0) -> list[str]:
        """The gold document text of each row. With variants, each round draws one text per
        misconception (not per row), so rows sharing a gold still share one positive text and
        the no-duplicates sampler keeps them out of each other's batch."""
        position = {int(i): p for p, i in enumerate(self.document_ids)}
        rng = np.random.default_rng(seed + round_index)
        chosen = {}
        for gold in sorted({int(g) for g in self.gold}):
            texts = [self.documents[position[gold]], *self.variants.get(gold, [])]
            chosen[gold] = texts[int(rng.integers(len(texts)))]
        return [chosen[int(g)] for g in self.gold]


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
        fold = question_folds(train, config.evaluate.folds, config.evaluate.seed)[
            config.train.val_fold
        ]
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
            extra_rows(resolve_input_path(path), data, held_out)
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
        variants=by_id,
    )


def score_model(model: SentenceTransformer, data: TrainingData, config: KitConfig) -> dict:
    """MAP@25 and recall@25, seen and unseen, of the model on the validation rows."""
    queries = encode(model, data.val_queries, config.retrieval)
    documents = encode(model, data.documents, config.retrieval)
    _, positions = fused_top_k([queries], [documents], config.retrieval.top_k)
    ranked = data.document_ids[positions.numpy()]
    return score_report(ranked, data.val_gold, data.val_seen, config.retrieval.top_k)


class StopAtEpoch(TrainerCallback):
    """Ends `trainer.train()` once `epoch` epochs are done (after the epoch's checkpoint)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, args, state, control, **kwargs):
        if state.epoch is not None and round(state.epoch) >= self.epoch:
            control.should_training_stop = True
            control.should_save = True
        return control


def mining_round(epoch: int, remine_every: int) -> int:
    """Which mining round supplies the negatives of `epoch` (0-based)."""
    return 0 if remine_every <= 0 else epoch // remine_every


class Trainer:
    """One fine-tuning run into `output_dir`; `run()` trains, evaluates and saves."""

    def __init__(
        self,
        data: CompetitionData,
        output_dir: str | Path,
        config: KitConfig,
        callbacks: list[TrainerCallback] | None = None,
    ):
        self.config, self.output_dir = config, Path(output_dir)
        self.callbacks = list(callbacks or [])
        self.state = PartialState()
        self.device = resolve_device(config.retrieval.device)
        if self.state.num_processes > 1:
            self.device = str(self.state.device)
        self.data = prepare_data(data, config)
        self.mining_calls = 0
        self.history: list[dict] = []
        self.seconds = {"mining": 0.0, "training": 0.0, "evaluation": 0.0}

    # --- negatives -------------------------------------------------------------------------
    def _negatives_path(self, round_index: int) -> Path:
        return self.output_dir / "negatives" / f"round-{round_index}.npy"

    def mine(self, model: SentenceTransformer, round_index: int) -> np.ndarray:
        """Mine this round's negatives on the main process; every rank gets the same ones."""
        path = self._negatives_path(round_index)
        if self.state.is_main_process and not path.exists():
            cfg = self.config.train
            ranges = cfg.negative_ranges
            first, last = ranges[min(round_index, len(ranges) - 1)]
            logger.info("mining round %d: ranks %d-%d", round_index, first, last)
            started = time.perf_counter()
            negatives = mine_negatives(
                encode(model, self.data.queries, self.config.retrieval),
                encode(model, self.data.documents, self.config.retrieval),
                self.data.document_ids,
                self.data.gold,
                cfg.n_negatives,
                (first, last),
                cfg.negative_margin,
                seed=cfg.seed + round_index,
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, negatives)
            self.mining_calls += 1
            self.seconds["mining"] += time.perf_counter() - started
        self.state.wait_for_everyone()
        return np.load(path)

    def dataset(self, negatives: np.ndarray | None, round_index: int) -> Dataset:
        positives = self.data.positives(round_index, self.config.train.seed)
        columns = {"anchor": self.data.queries, "positive": positives}
        if negatives is not None:
            for i in range(negatives.shape[1]):
                columns[f"negative_{i + 1}"] = [self.data.documents[p] for p in negatives[:, i]]
        return Dataset.from_dict(columns)

    # --- training --------------------------------------------------------------------------
    def _arguments(self) -> SentenceTransformerTrainingArguments:
        cfg = self.config.train
        return SentenceTransformerTrainingArguments(
            output_dir=str(self.output_dir / "checkpoints"),
            num_train_epochs=cfg.epochs,
            per_device_train_batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            warmup_steps=cfg.warmup_ratio,  # a float below 1 is a ratio in transformers v5
            weight_decay=cfg.weight_decay,
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            save_strategy="steps" if cfg.save_steps else "epoch",
            save_steps=cfg.save_steps or 500,
            save_total_limit=2,
            logging_steps=10,
            seed=cfg.seed,
            report_to="none",
            use_cpu=self.device == "cpu",
            disable_tqdm=not self.config.retrieval.show_progress,
            **mixed_precision_flags(cfg, self.device),
        )

    def _loss(self, model: SentenceTransformer):
        cfg = self.config.train
        if cfg.loss == "mnrl":
            return losses.MultipleNegativesRankingLoss(model, scale=cfg.scale)
        if cfg.loss == "cached_mnrl":
            return losses.CachedMultipleNegativesRankingLoss(
                model, scale=cfg.scale, mini_batch_size=cfg.mini_batch_size
            )
        raise ValueError(f"loss must be 'mnrl' or 'cached_mnrl', got {cfg.loss!r}")

    def latest_checkpoint(self) -> Path | None:
        checkpoints = sorted(
            (self.output_dir / "checkpoints").glob("checkpoint-*"),
            key=lambda p: int(p.name.split("-")[1]),
        )
        return checkpoints[-1] if checkpoints else None

    def _completed_epochs(self, checkpoint: Path | None) -> int:
        if checkpoint is None:
            return 0
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        return int(state["epoch"] + 1e-6)

    def _record(self, model: SentenceTransformer, epoch: int) -> None:
        if len(self.data.val_gold) and self.state.is_main_process:
            started = time.perf_counter()
            report = {"epoch": epoch, **score_model(model, self.data, self.config)}
            self.seconds["evaluation"] += time.perf_counter() - started
            logger.info("epoch %d: %s", epoch, {k: report[k] for k in ("map@25", "recall@25")})
            self.history.append(report)
            self._write_metrics()

    def _write_metrics(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "metrics.json").write_text(json.dumps(self.history, indent=2))
        if self.history:
            plot_training(self.history, self.output_dir / "training_curves.png")

    def run(self, resume: bool = False) -> SentenceTransformer:
        cfg = self.config.train
        checkpoint = self.latest_checkpoint() if resume else None
        if resume and checkpoint is None:
            logger.warning("--resume: no checkpoint in %s, starting afresh", self.output_dir)
        metrics = self.output_dir / "metrics.json"
        if checkpoint is not None and metrics.exists():
            self.history = json.loads(metrics.read_text())
        if checkpoint is not None and cfg.lora_r:  # the adapter must come back trainable
            model = build_model(
                replace(cfg, lora_r=0), self.config.retrieval.max_seq_length, self.device
            )
            model.load_adapter(str(checkpoint), is_trainable=True)
        elif checkpoint is not None:  # the weights that the next round of mining must use
            model = SentenceTransformer(str(checkpoint), device=self.device, local_files_only=True)
        else:
            model = build_model(cfg, self.config.retrieval.max_seq_length, self.device)
            self._record(model, 0)
        loss, arguments = self._loss(model), self._arguments()
        start = self._completed_epochs(checkpoint)
        for epoch in range(start, cfg.epochs):
            negatives = None
            if cfg.n_negatives:
                negatives = self.mine(model, mining_round(epoch, cfg.remine_every))
            trainer = SentenceTransformerTrainer(
                model=model,
                args=arguments,
                train_dataset=self.dataset(negatives, epoch),
                loss=loss,
                callbacks=[StopAtEpoch(epoch + 1), *self.callbacks],
            )
            if not self.config.retrieval.show_progress:
                trainer.remove_callback(PrinterCallback)  # keep stdout for results
            started = time.perf_counter()
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
            self.seconds["training"] += time.perf_counter() - started
            checkpoint = self.latest_checkpoint()
            self._record(model, epoch + 1)
        if cfg.lora_r:
            model = merge_lora(model)
        if self.state.is_main_process:
            model.save(str(self.output_dir))
            (self.output_dir / "resolved_config.json").write_text(
                json.dumps(self.config.to_dict(), indent=2)
            )
            self._write_metrics()
        self.state.wait_for_everyone()
        return model
