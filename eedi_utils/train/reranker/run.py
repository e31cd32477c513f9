"""`eedi train-reranker`: fine-tune a causal LM to rerank out-of-fold retrieval candidates with
LoRA (QLoRA on CUDA) on the transformers Trainer, merge the adapter into a half-precision copy
of the base, and report the held-out fold before and after, as retrieval reports it.

OUT/model is the merged, plain transformers folder that `[rerank] model` loads (transformers or
vLLM); OUT/model-gptq, with `quantize_bits`, the same quantised for vLLM on a T4;
OUT/candidates.npz, OUT/retrievers/ and OUT/adapter/ are the working files;
OUT/reranker_metrics.json holds the reports and the training losses. Runs on several GPUs under
`accelerate launch -m eedi_utils.cli train-reranker ...` (the Trainer's DDP)."""

from __future__ import annotations

import copy
import json
import logging
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import release_memory
from peft import PeftModel, TaskType, get_peft_model, prepare_model_for_kbit_training
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, TrainingArguments

from eedi_utils.config import KitConfig
from eedi_utils.data import CompetitionData, labelled
from eedi_utils.devices import quantization_kwargs, resolve_device, resolve_dtype
from eedi_utils.inputs import resolve_input_path
from eedi_utils.metrics import lb_key, score_report
from eedi_utils.rerank import stage as llm_stage
from eedi_utils.rerank.backends import padding_id, single_token_ids
from eedi_utils.rerank.engine import inference_tensor_parallel
from eedi_utils.rerank.prompts import LABELS, YES_NO
from eedi_utils.splits import config_folds
from eedi_utils.train.lora import lora_config
from eedi_utils.train.reranker.architecture import Architecture
from eedi_utils.train.reranker.candidates import out_of_fold_candidates
from eedi_utils.train.reranker.examples import (
    ListwiseExample,
    PointwiseGroup,
    listwise_examples,
    pointwise_groups,
)
from eedi_utils.train.reranker.loss import ChoiceTrainer, ListwiseCollator, PointwiseCollator
from eedi_utils.train.reranker.memory import check_training_memory
from eedi_utils.train.reranker.quantize import calibration_windows, quantize_gptq
from eedi_utils.train.reranker.tensor_parallel import check_group_size
from eedi_utils.train.retriever.model import mixed_precision_flags

logger = logging.getLogger(__name__)
MODEL_FOLDER = "model"
QUANTIZED_FOLDER = "model-gptq"
METRICS_FILE = "reranker_metrics.json"
COLLECTIVE_TIMEOUT = timedelta(hours=4)
"""How long the other processes wait while the main one ranks candidates, merges, evaluates
(NCCL's default of 10 minutes would abort them)."""


class RerankerTraining:
    """One reranker run: candidates, prompts, training, merge, and the held-out reports."""

    def __init__(self, data: CompetitionData, output_dir: str | Path, config: KitConfig):
        cfg = config.train_reranker
        if not cfg.base_model:
            raise ValueError("[train_reranker] base_model is empty: name a causal LM folder")
        if cfg.load_in_4bit and not cfg.lora_r:
            raise ValueError(
                "[train_reranker] load_in_4bit needs LoRA (lora_r > 0): 4-bit "
                "weights cannot be trained directly"
            )
        if cfg.top_n < config.retrieval.top_k:
            raise ValueError(
                f"[train_reranker] top_n {cfg.top_n} is below [retrieval] top_k "
                f"{config.retrieval.top_k}: the held-out report ranks top_k candidates"
            )
        self.data, self.output_dir, self.config = data, Path(output_dir), config
        self.base = resolve_input_path(cfg.base_model, dataset=config.kaggle.model_dataset)
        if cfg.quantize_bits:  # before hours of training: the quantised folder must load
            arch = Architecture.from_folder(self.base)
            for tp in inference_tensor_parallel(config.rerank, torch.cuda.device_count()):
                check_group_size(arch, cfg.quantize_group_size, cfg.quantize_bits, tp)
        self.device = resolve_device("auto")
        self.train = labelled(data.train())
        self.names = dict(
            zip(data.misconceptions["MisconceptionId"], data.misconceptions["MisconceptionName"])
        )
        self.reports: dict[str, dict] = {}
        self.losses: list[float] = []

    @property
    def model_dir(self) -> Path:
        return self.output_dir / MODEL_FOLDER

    def split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Training rows, evaluated rows and whether each evaluated row's gold is seen."""
        cfg = self.config.train_reranker
        if cfg.val_fold < 0:
            return np.arange(len(self.train)), np.array([], np.int64), np.array([], bool)
        fold = config_folds(self.train, self.config.evaluate)[cfg.val_fold]
        val_rows = fold.val_rows
        if 0 < cfg.eval_rows < len(val_rows):
            rng = np.random.default_rng(cfg.seed)
            val_rows = np.sort(rng.choice(val_rows, cfg.eval_rows, replace=False))
        gold = self.train["MisconceptionId"].to_numpy(np.int64)
        return fold.train_rows, val_rows, fold.seen_mask(gold[val_rows])

    def run(self) -> Path:
        """Train, merge into OUT/model, and report; returns OUT/model."""
        cfg = self.config.train_reranker
        # the first one sets up the group; on CPU only with cpu=True (accelerate 1.15 state.py)
        state = PartialState(cpu=self.device == "cpu", timeout=COLLECTIVE_TIMEOUT)
        self.check_memory()
        ranked = out_of_fold_candidates(self.data, self.config, self.output_dir)
        train_rows, val_rows, val_seen = self.split()
        tokenizer = AutoTokenizer.from_pretrained(str(self.base), local_files_only=True)
        pad_id = padding_id(tokenizer)
        rows = self.train.iloc[train_rows].reset_index(drop=True)
        if cfg.mode == "listwise":
            examples = listwise_examples(
                rows, ranked[train_rows], self.names, tokenizer, cfg.list_sizes,
                cfg.max_length, cfg.seed,
            )  # fmt: skip
            collator = ListwiseCollator(pad_id)
            token_ids = single_token_ids(tokenizer, LABELS)
        else:
            examples = pointwise_groups(
                rows, ranked[train_rows], self.names, tokenizer, cfg.group_size, cfg.max_length
            )
            collator = PointwiseCollator(pad_id)
            token_ids = single_token_ids(tokenizer, YES_NO)
        if not examples:
            raise ValueError("no training prompts: every row was over [train_reranker] max_length")
        held_out = ranked[val_rows][:, : self.config.retrieval.top_k]
        trainer = ChoiceTrainer(
            model=self.load_model(),
            args=self.arguments(),
            train_dataset=examples,
            data_collator=collator,
            mode=cfg.mode,
            token_ids=token_ids,
        )
        trainer.train()
        self.losses = [round(e["loss"], 4) for e in trainer.state.log_history if "loss" in e]
        trained = self.release(trainer)
        del trainer
        # every process has given its model back before the main one merges and starts the
        # evaluation engines: vLLM spans every visible GPU and refuses to start on one whose
        # free memory is below gpu_memory_utilization (vllm/v1/worker/utils.py)
        state.wait_for_everyone()
        if state.is_main_process:
            self.save(trained, tokenizer)
        del trained
        release_memory()
        state.wait_for_everyone()  # the model is saved
        # the other processes leave now and free their GPUs for the evaluation engines; a
        # barrier after hours of evaluation would outlast COLLECTIVE_TIMEOUT
        if state.is_main_process:
            self.report(held_out, val_rows, val_seen, examples)
        return self.model_dir

    def base_dtype(self) -> torch.dtype:
        """[rerank] dtype under LoRA; fp32 for full fine-tuning."""
        if self.config.train_reranker.lora_r:
            return resolve_dtype(self.config.rerank.dtype, self.device)
        return torch.float32

    def check_memory(self) -> None:
        """On CUDA, refuse a run whose estimated training memory exceeds this process's GPU
        (`train/reranker/memory.py`), before candidates are ranked or anything is loaded."""
        if not self.device.startswith("cuda"):
            return
        cfg = self.config.train_reranker
        check_training_memory(
            Architecture.from_folder(self.base),
            cfg,
            PartialState().local_process_index,
            self.base_dtype().itemsize if cfg.lora_r else 2,  # full: mixed-precision activations
        )

    def report(
        self,
        held_out: np.ndarray,
        val_rows: np.ndarray,
        val_seen: np.ndarray,
        examples: list[ListwiseExample] | list[PointwiseGroup],
    ) -> None:
        """Main process, after training: the held-out reports (retrieval, the base before
        training, OUT/model after) and OUT/model-gptq with its own report, written to
        OUT/reranker_metrics.json."""
        if len(val_rows):
            self.reports["retrieval"] = self.score(held_out, val_rows, val_seen)
            self.reports["before"] = self.evaluate(self.base, held_out, val_rows, val_seen)
            self.reports["after"] = self.evaluate(self.model_dir, held_out, val_rows, val_seen)
        self.write_metrics(len(examples))
        if self.config.train_reranker.quantize_bits:
            quantized = self.quantize(examples)
            release_memory()
            if len(val_rows):
                self.reports["quantized"] = self.evaluate(quantized, held_out, val_rows, val_seen)
            self.write_metrics(len(examples))

    def load_model(self) -> PreTrainedModel:
        """The base in [rerank] dtype with a LoRA adapter (4-bit NF4 base for QLoRA), or in
        fp32 for full fine-tuning (lora_r = 0)."""
        cfg = self.config.train_reranker
        dtype = self.base_dtype()
        kwargs: dict = {}
        if cfg.load_in_4bit:
            kwargs = quantization_kwargs(4, self.device)
            kwargs["device_map"] = {"": PartialState().local_process_index}
        model = AutoModelForCausalLM.from_pretrained(
            str(self.base), dtype=dtype, local_files_only=True, **kwargs
        )
        if cfg.load_in_4bit:
            model = prepare_model_for_kbit_training(
                model,
                use_gradient_checkpointing=cfg.gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False},
            )
        if not cfg.lora_r:
            return model
        return get_peft_model(model, lora_config(cfg, model.config.model_type, TaskType.CAUSAL_LM))

    def arguments(self) -> TrainingArguments:
        cfg = self.config.train_reranker
        return TrainingArguments(
            output_dir=str(self.output_dir / "checkpoints"),
            num_train_epochs=cfg.epochs,
            per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            learning_rate=cfg.learning_rate,
            warmup_steps=cfg.warmup_ratio,  # a float below 1 is a ratio in transformers 5
            gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            remove_unused_columns=False,
            ddp_find_unused_parameters=False,
            use_cpu=self.device == "cpu",
            seed=cfg.seed,
            **mixed_precision_flags(cfg.mixed_precision, self.device),
        )

    def release(self, trainer: ChoiceTrainer) -> PreTrainedModel | Path:
        """Give back the training memory (model copies, optimizer, accelerator state) before the
        merge and the evaluation: the adapter is written to OUT/adapter and its folder returned;
        a fully fine-tuned model is returned on the CPU."""
        model = trainer.model
        if isinstance(model, PeftModel):
            kept: PreTrainedModel | Path = self.output_dir / "adapter"
            if PartialState().is_main_process:
                model.save_pretrained(kept)
        else:
            kept = model.to("cpu")
        trainer.model = trainer.model_wrapped = trainer.optimizer = trainer.lr_scheduler = None
        trainer.accelerator.free_memory()
        del model
        release_memory()
        return kept

    def save(self, trained: PreTrainedModel | Path, tokenizer) -> None:
        """OUT/model: the adapter folder `trained` merged with peft's `merge_and_unload` into the
        base loaded again in `save_dtype` (spread over the GPUs when there are some), or the
        fully fine-tuned weights in `save_dtype`."""
        dtype = getattr(torch, self.config.train_reranker.save_dtype)
        if isinstance(trained, Path):
            base = AutoModelForCausalLM.from_pretrained(
                str(self.base),
                dtype=dtype,
                local_files_only=True,
                device_map="auto" if torch.cuda.is_available() else None,
            )
            merged = PeftModel.from_pretrained(base, trained).merge_and_unload()
        else:
            merged = trained.to(dtype)
        merged.save_pretrained(self.model_dir)
        tokenizer.save_pretrained(self.model_dir)
        logger.info("reranker saved in %s", self.model_dir)

    def quantize(self, examples: list[ListwiseExample] | list[PointwiseGroup]) -> Path:
        """OUT/model-gptq: OUT/model quantised to GPTQ, calibrated on windows cut from the
        training prompts."""
        cfg = self.config.train_reranker
        prompts = [prompt for example in examples for prompt in example.prompts]
        windows = calibration_windows(prompts, cfg.quantize_seqlen, cfg.quantize_samples, cfg.seed)
        return quantize_gptq(
            self.model_dir,
            self.output_dir / QUANTIZED_FOLDER,
            windows,
            cfg.quantize_bits,
            cfg.quantize_group_size,
            cfg.quantize_iters,
        )

    def evaluate(
        self, model_path: Path, held_out: np.ndarray, val_rows: np.ndarray, val_seen: np.ndarray
    ) -> dict:
        """The held-out rows' candidates (`held_out`, top_k of them per row) reranked by
        `model_path` through the [rerank] stage itself (its backend: vLLM with tensor
        parallelism on CUDA; its windows, reverse pass, child process; this run's mode), scored
        like retrieval."""
        config = copy.deepcopy(self.config.rerank)
        config.mode, config.model = self.config.train_reranker.mode, str(model_path)
        long = self.train.iloc[val_rows].reset_index(drop=True)
        reranked = llm_stage.run(
            llm_stage.Job("rerank", long, held_out, self.data.misconceptions, config)
        )
        return self.score(reranked, val_rows, val_seen)

    def score(self, ranked: np.ndarray, val_rows: np.ndarray, val_seen: np.ndarray) -> dict:
        gold = self.train["MisconceptionId"].to_numpy(np.int64)[val_rows]
        report = score_report(
            ranked,
            gold,
            val_seen,
            self.config.retrieval.top_k,
            self.config.evaluate.lb_unseen_share,
        )
        logger.info("held-out %s: %s", lb_key(self.config.retrieval.top_k), report.get(lb_key()))
        return report

    def write_metrics(self, n_examples: int) -> None:
        metrics = {
            "reports": self.reports,
            "training_losses": self.losses,
            "training_prompts": n_examples,
            "config": self.config.to_dict(),
        }
        (self.output_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
