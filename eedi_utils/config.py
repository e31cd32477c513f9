"""Typed settings for every stage, loadable from one TOML file with a section per stage.

Every number a user may tune lives here; scripts, notebooks and the CLI build these objects
and pass them down instead of repeating constants.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from eedi_utils.export.settings import ExportConfig
from eedi_utils.generate.settings import GenerateConfig
from eedi_utils.kaggle.settings import KaggleConfig

NUM_PREDICTIONS = 25
"""How many ranked ids the competition scores per row (MAP@25)."""

COMMAND_SECTIONS = {
    "predict": ("retrieval", "text", "rerank"),
    "evaluate": ("retrieval", "text", "rerank", "evaluate"),
    "train": ("train", "retrieval", "text", "evaluate"),
    "paraphrase": ("generate",),
    "synthesize": ("generate",),
    "merge": (),
    "export": ("export", "retrieval", "text", "evaluate"),
    "train-reranker": ("train_reranker", "train", "rerank", "retrieval", "text", "evaluate"),
}
"""The config sections each `eedi` command reads; each of their settings is one of its flags.
A field whose metadata names `commands` is a flag of those commands only."""
RANKING = ("predict", "evaluate")
NOTEBOOK_ONLY: tuple[str, ...] = ()


Dtype = Literal["auto", "float32", "bfloat16", "float16"]
MixedPrecision = Literal["auto", "bf16", "fp16", "no"]

_AT_LEAST_1 = (1, None, False)
_AT_LEAST_0 = (0, None, False)
_ABOVE_0 = (0, None, True)
_SHARE = (0, 1, False)
RANGES: dict[tuple[str, str], tuple[float, float | None, bool]] = {
    **{
        ("retrieval", key): _AT_LEAST_1
        for key in ("rrf_depth", "top_k", "batch_size", "max_seq_length", "query_chunk_size")
    },
    ("retrieval", "rrf_k"): _AT_LEAST_0,
    ("retrieval", "tokens_per_second"): _AT_LEAST_0,
    ("retrieval", "threads"): _AT_LEAST_0,
    ("export", "calibration_texts"): _AT_LEAST_1,
    ("export", "tolerance"): _AT_LEAST_0,
    ("evaluate", "folds"): (2, None, False),
    ("evaluate", "lb_unseen_share"): _SHARE,
    ("evaluate", "commit_run_questions"): _AT_LEAST_0,
    **{("train", key): _AT_LEAST_1 for key in ("batch_size", "mini_batch_size")},
    **{
        ("train", key): _AT_LEAST_0
        for key in (
            "epochs",  # 0: no training step (the base model saved, its prior tuned)
            "weight_decay",
            "n_negatives",
            "remine_every",
            "lora_r",
            "lora_alpha",
        )
    },
    ("train", "save_steps"): _AT_LEAST_0,
    ("train", "learning_rate"): _ABOVE_0,
    ("train", "scale"): _ABOVE_0,
    ("train", "warmup_ratio"): _SHARE,
    ("train", "lora_dropout"): _SHARE,
    ("train", "val_fold"): (-1, None, False),
    ("train", "negative_relative_margin"): _AT_LEAST_0,
    **{
        ("rerank", key): _AT_LEAST_1 for key in ("hypothesis_tokens", "batch_size", "max_model_len")
    },
    ("rerank", "tensor_parallel_size"): _AT_LEAST_0,
    ("rerank", "gpu_memory_utilization"): (0, 1, True),
    **{
        ("train_reranker", key): _AT_LEAST_1
        for key in (
            "top_n",
            "group_size",
            "max_length",
            "batch_size",
            "gradient_accumulation_steps",
            "quantize_group_size",
            "quantize_samples",
            "quantize_seqlen",
        )
    },
    **{
        ("train_reranker", key): _AT_LEAST_0
        for key in ("lora_r", "lora_alpha", "quantize_iters", "eval_rows")
    },
    ("train_reranker", "epochs"): _ABOVE_0,
    ("train_reranker", "learning_rate"): _ABOVE_0,
    ("train_reranker", "warmup_ratio"): _SHARE,
    ("train_reranker", "lora_dropout"): _SHARE,
    ("train_reranker", "val_fold"): (-1, None, False),
    **{
        ("generate", key): _AT_LEAST_1 for key in ("n", "max_tokens", "concurrency", "max_attempts")
    },
    **{
        ("generate", key): _AT_LEAST_0
        for key in ("temperature", "max_retries", "max_cost", "per_misconception", "few_shot")
    },
    ("generate", "timeout"): _ABOVE_0,
}
"""(low, high or None, low excluded) of each number with a fixed domain, checked by the
loader; a fold index is further checked against [evaluate] folds."""


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names the file and key."""


@dataclass
class TextConfig:
    """How a wrong answer becomes a query and a misconception becomes a document."""

    query_template: str = field(
        default=(
            "Topic: {construct}\nSubject: {subject}\nCorrect answer: {correct_answer}\n"
            "Wrong answer: {wrong_answer}\nQuestion: {question}"
        ),
        metadata={
            "help": "Fields: subject, construct, question, correct_answer, wrong_answer. The "
            "long question text comes last, so a cut at max_seq_length keeps the answers "
            "(docs/benchmarks.md, benchmarks/query_text.py)."
        },
    )
    misconception_template: str = field(
        default="{misconception}", metadata={"help": "Field: misconception."}
    )
    query_instruction: str = field(
        default="", metadata={"help": "Prefix put before every query (LLM embedders)."}
    )
    misconception_instruction: str = field(
        default="", metadata={"help": "Prefix put before every misconception text."}
    )


@dataclass
class RetrievalConfig:
    """Embedding models and exact top-K search."""

    models: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Model folders; empty means the bundled all-MiniLM-L6-v2.",
            "commands": RANKING,
        },
    )
    fusion: Literal["mean", "rrf"] = field(
        default="mean", metadata={"help": "'mean' of scores or 'rrf'.", "commands": RANKING}
    )
    rrf_k: int = field(
        default=60,
        metadata={"help": "Constant k of reciprocal-rank fusion.", "commands": RANKING},
    )
    rrf_depth: int = field(
        default=100,
        metadata={"help": "Ranks of each model that RRF fuses.", "commands": RANKING},
    )
    top_k: int = field(default=NUM_PREDICTIONS, metadata={"help": "Ids kept per row."})
    batch_size: int = field(default=64, metadata={"help": "Texts per encoding batch."})
    max_seq_length: int = field(default=128, metadata={"help": "Tokens kept per text."})
    device: str = field(default="auto", metadata={"help": "'auto', 'cpu', 'cuda', 'cuda:1'..."})
    devices: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Encode on these devices, one process each with its own copy of the model "
            "and a share of the texts (['cuda:0', 'cuda:1'] on Kaggle's T4 x2); empty: "
            "`device` in this process."
        },
    )
    load_in_bits: Literal[0, 4, 8] = field(
        default=0,
        metadata={
            "help": "Load the embedder in 4 (NF4) or 8 bits with bitsandbytes (CUDA only): a "
            "7B embedder in fp16 (~15 GB) does not fit a 15 GB T4; 0: `dtype`."
        },
    )
    tokens_per_second: float = field(
        default=0.0,
        metadata={
            "help": "Tokens one device encodes per second, for the time estimate printed "
            "before encoding (each worker also logs its measured rate); 0: tokens only."
        },
    )
    dtype: Dtype = field(
        default="auto",
        metadata={
            "help": "'auto' (bf16 where the hardware runs it fast, fp16 on older GPUs, "
            "else fp32), 'float32', 'bfloat16' or 'float16'."
        },
    )
    query_chunk_size: int = field(
        default=4096, metadata={"help": "Queries scored against all documents at once."}
    )
    threads: int = field(
        default=0,
        metadata={
            "help": "CPU threads for encoding; 0: torch's own choice, and for an exported "
            "model $OMP_NUM_THREADS or else the CPUs this process may run on "
            "(os.sched_getaffinity).",
            "commands": (*RANKING, "export"),
        },
    )
    unseen_prior: float | None = field(
        default=None,
        metadata={
            "help": "Added to the cosine of every misconception no training row labels; "
            "unset: the strength `eedi train` tuned and stored in the model folder (0 without)."
        },
    )
    show_progress: bool = field(default=True, metadata={"help": "Progress bars while encoding."})


@dataclass
class EvaluateConfig:
    """Grouped cross-validation, reported as the leaderboard would weigh it."""

    folds: int = field(default=5, metadata={"help": "Number of folds."})
    seed: int = field(default=42, metadata={"help": "Seed of the fold assignment."})
    group_by: Literal["ConstructId", "QuestionId", "SubjectId"] = field(
        default="ConstructId",
        metadata={
            "help": "Rows sharing this column stay in one fold: 'ConstructId' (43% of validation "
            "rows unseen on the real train, nearer the hidden test's ~75% than 'QuestionId', "
            "26%), 'QuestionId' or 'SubjectId' (58%)."
        },
    )
    lb_unseen_share: float = field(
        default=0.75,
        metadata={
            "help": "Share of unseen-misconception rows assumed in the hidden test, for the "
            "leaderboard estimate map@25_lb = (1 - u) seen + u unseen (a 3rd-place probe put "
            "~75% of hidden top-1 labels on misconceptions unseen in train)."
        },
    )
    commit_run_questions: int = field(
        default=300,
        metadata={
            "help": "Train questions scored on a Kaggle commit run (not the rerun).",
            "commands": NOTEBOOK_ONLY,
        },
    )


@dataclass
class TrainConfig:
    """Fine-tuning a retriever with sentence-transformers' trainer and hard negatives."""

    base_model: str = field(
        default="", metadata={"help": "Model folder to start from; empty: all-MiniLM-L6-v2."}
    )
    pooling: Literal[
        "auto", "mean", "cls", "lasttoken", "max", "weightedmean", "mean_sqrt_len_tokens"
    ] = field(
        default="auto",
        metadata={
            "help": "For plain transformers folders: 'auto' (mean for encoders, last "
            "token for decoders), 'mean', 'cls' or 'lasttoken'."
        },
    )
    epochs: int = field(
        default=4,
        metadata={
            "help": "Passes over the training rows (4: best map@25_lb on 0.1's ConstructId CV, "
            "22 minutes on 2 CPU cores with native bf16; an AVX2-only CPU runs fp32 at 19 "
            "minutes or more an epoch, so 2 fit 30 minutes there; docs/benchmarks.md)."
        },
    )
    batch_size: int = field(default=32, metadata={"help": "Rows per step and device."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak learning rate."})
    warmup_ratio: float = field(default=0.1, metadata={"help": "Share of steps warming up."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    loss: Literal["mnrl", "cached_mnrl"] = field(
        default="mnrl",
        metadata={
            "help": "'mnrl' (MultipleNegativesRankingLoss) or 'cached_mnrl' (GradCache: "
            "large batches in small memory)."
        },
    )
    mini_batch_size: int = field(default=16, metadata={"help": "cached_mnrl's chunk size."})
    scale: float = field(default=20.0, metadata={"help": "Inverse temperature of the loss."})
    n_negatives: int = field(
        default=1, metadata={"help": "Mined hard negatives per row; 0: in-batch only."}
    )
    negative_ranges: list[list[int]] = field(
        default_factory=lambda: [[1, 100], [1, 50], [1, 25]],
        metadata={
            "help": "Rank range [first, last] to draw negatives from, one per mining "
            "round; the last one repeats."
        },
    )
    negative_margin: float | None = field(
        default=None,
        metadata={
            "help": "Skip candidates scoring above the gold's score minus this (likely "
            "false negatives); unset: off."
        },
    )
    negative_relative_margin: float | None = field(
        default=None,
        metadata={
            "help": "Skip candidates scoring above the gold's score minus this share of its "
            "magnitude (0.05: within 5% of the gold; NV-Retriever's TopK-PercPos); unset: off."
        },
    )
    negatives_from: Literal["all", "golds"] = field(
        default="all",
        metadata={
            "help": "Misconceptions to mine negatives among: 'all', or 'golds' (only those "
            "some training row has as its gold, so a misconception never trained as a "
            "positive, an unseen one, is never pushed away either)."
        },
    )
    remine_every: int = field(
        default=1, metadata={"help": "Epochs between re-mining from the current model; 0: once."}
    )
    extra_train_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Generated rows (train.csv schema plus SourceQuestionId, empty for "
            "rows made from no real question); they join training only, and rows made "
            "from a validation question are dropped."
        },
    )
    val_fold: int = field(
        default=0, metadata={"help": "Fold of [evaluate] held out for validation; -1: none."}
    )
    mixed_precision: MixedPrecision = field(
        default="auto", metadata={"help": "'auto' (as [retrieval] dtype), 'bf16', 'fp16', 'no'."}
    )
    lora_r: int = field(default=0, metadata={"help": "LoRA rank; 0: full fine-tuning."})
    lora_alpha: int = field(default=0, metadata={"help": "LoRA alpha; 0: twice the rank."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(
        default_factory=list, metadata={"help": "Modules LoRA adapts; empty: per architecture."}
    )
    load_in_4bit: bool = field(
        default=False, metadata={"help": "QLoRA: 4-bit base weights (bitsandbytes, CUDA only)."}
    )
    unseen_prior_grid: list[float] = field(
        default_factory=lambda: [0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2],
        metadata={
            "help": "Unseen-prior strengths tried on the validation fold after training; the "
            "best by map@25_lb is stored with the model, and the figure reported is "
            "cross-fitted (each half of the fold's groups ranked with the strength chosen on "
            "the other). With val_fold = -1 none is tuned: see unseen_prior_from."
        },
    )
    unseen_prior_from: str = field(
        default="",
        metadata={
            "help": "For val_fold = -1: the CV run (an `eedi train` folder with a held-out "
            "fold) whose tuned strength the final model stores; [retrieval] unseen_prior wins "
            "when set; neither: 0, with a warning."
        },
    )
    save_steps: int = field(
        default=0, metadata={"help": "Checkpoint every N steps too; 0: at each epoch end only."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of training and negative sampling."})


@dataclass
class RerankConfig:
    """The LLM stage of inference: a hypothesis joining the query, then a rerank of the top."""

    enabled: bool = field(default=False, metadata={"help": "Rerank the retrieved candidates."})
    hypothesis: bool = field(
        default=False,
        metadata={
            "help": "Before retrieval, the LLM names the likely misconception in one "
            "sentence, appended to the query text."
        },
    )
    model: str = field(
        default="", metadata={"help": "Causal LM folder (e.g. a Qwen2.5 AWQ dataset on Kaggle)."}
    )
    backend: Literal["auto", "vllm", "transformers"] = field(
        default="auto", metadata={"help": "'vllm', 'transformers', or 'auto' (vllm on CUDA)."}
    )
    mode: Literal["listwise", "pointwise"] = field(
        default="listwise",
        metadata={
            "help": "'listwise' (label log-probabilities over a window) or 'pointwise' "
            "(yes minus no, one prompt per candidate)."
        },
    )
    windows: list[list[int]] = field(
        default_factory=lambda: [[8, 17], [1, 10]],
        metadata={
            "help": "Rank windows [first, last] (1-based), reordered in this order; "
            "ranks outside a window keep their place."
        },
    )
    reverse_pass: bool = field(
        default=True,
        metadata={"help": "Listwise: average in a pass with the window's candidates reversed."},
    )
    hypothesis_tokens: int = field(default=48, metadata={"help": "Tokens of the hypothesis."})
    batch_size: int = field(default=8, metadata={"help": "transformers: prompts per forward."})
    dtype: Dtype = field(
        default="auto",
        metadata={
            "help": "'auto' (fp16 on a T4, bf16 on newer GPUs, fp32 on "
            "CPUs), 'float16', 'bfloat16' or 'float32'."
        },
    )
    tensor_parallel_size: int = field(
        default=0, metadata={"help": "vllm: GPUs per model; 0: every visible GPU (2 on T4 x2)."}
    )
    attention_backend: str = field(
        default="auto",
        metadata={
            "help": "vllm: attention backend; 'auto': TRITON_ATTN on GPUs before sm80 (a T4 is "
            "sm75; FlashAttention needs sm80), else vLLM's choice."
        },
    )
    max_model_len: int = field(default=4096, metadata={"help": "vllm: longest prompt."})
    gpu_memory_utilization: float = field(default=0.90, metadata={"help": "vllm: memory share."})
    enforce_eager: bool = field(default=True, metadata={"help": "vllm: no CUDA graphs."})
    quantization: str = field(
        default="", metadata={"help": "vllm: e.g. 'awq'; empty: from the checkpoint."}
    )
    separate_process: bool = field(
        default=True,
        metadata={"help": "Run the LLM in its own process, after the embedder's memory is freed."},
    )


@dataclass
class RerankerTrainConfig:
    """Fine-tuning an LLM reranker on out-of-fold retrieval candidates (`eedi train-reranker`),
    scored exactly as the [rerank] stage scores."""

    base_model: str = field(
        default="", metadata={"help": "Causal LM folder to fine-tune (with a chat template)."}
    )
    retrievers: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Retriever folders giving each train row's candidates: one per [evaluate] "
            "fold, trained without that fold (e.g. `eedi train --val-fold K`), or one that "
            "trained on no train row (a base model); empty: the kit trains one per fold "
            "with the [train] settings."
        },
    )
    top_n: int = field(default=25, metadata={"help": "Candidates kept per row."})
    mode: Literal["listwise", "pointwise"] = field(
        default="listwise",
        metadata={
            "help": "'listwise' (cross-entropy over the candidate letters' logits) or "
            "'pointwise' (logit(Yes) - logit(No), cross-entropy over a group)."
        },
    )
    list_sizes: list[int] = field(
        default_factory=lambda: [5, 10, 15, 25],
        metadata={"help": "Listwise: candidates per prompt, drawn per row from this set."},
    )
    group_size: int = field(
        default=8, metadata={"help": "Pointwise: prompts per group (the gold and its negatives)."}
    )
    max_length: int = field(
        default=2048, metadata={"help": "Longest prompt in tokens; longer rows are left out."}
    )
    epochs: float = field(default=1.0, metadata={"help": "Passes over the training rows."})
    batch_size: int = field(
        default=2, metadata={"help": "Prompts (listwise) or groups (pointwise) per device step."}
    )
    gradient_accumulation_steps: int = field(default=8, metadata={"help": "Steps per update."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak learning rate."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Share of steps warming up."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank; 0: full fine-tuning."})
    lora_alpha: int = field(default=0, metadata={"help": "LoRA alpha; 0: twice the rank."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(
        default_factory=list, metadata={"help": "Modules LoRA adapts; empty: per architecture."}
    )
    load_in_4bit: bool = field(
        default=False, metadata={"help": "QLoRA: 4-bit base weights (bitsandbytes, CUDA only)."}
    )
    gradient_checkpointing: bool = field(
        default=True, metadata={"help": "Recompute activations in the backward pass."}
    )
    mixed_precision: MixedPrecision = field(
        default="auto",
        metadata={
            "help": "'auto' (bf16 where it runs natively, fp16 on older GPUs, else off), 'bf16', "
            "'fp16', 'no'."
        },
    )
    save_dtype: Literal["float16", "bfloat16", "float32"] = field(
        default="float16",
        metadata={"help": "Dtype of the merged folder (float16 runs on a T4; bfloat16; float32)."},
    )
    quantize_bits: Literal[0, 4, 8] = field(
        default=0,
        metadata={
            "help": "4 or 8: also write OUT/model-gptq, the merged reranker quantised to GPTQ "
            "with AutoRound (extra [quantize]) for vLLM on a T4; 0: no quantisation."
        },
    )
    quantize_group_size: int = field(
        default=128, metadata={"help": "GPTQ: input channels sharing one scale."}
    )
    quantize_iters: int = field(
        default=200,
        metadata={"help": "AutoRound's tuning steps per block; 0: round-to-nearest (fastest)."},
    )
    quantize_samples: int = field(
        default=128, metadata={"help": "Calibration windows, cut from the training prompts."}
    )
    quantize_seqlen: int = field(default=2048, metadata={"help": "Tokens per calibration window."})
    val_fold: int = field(
        default=0, metadata={"help": "Fold of [evaluate] held out for evaluation; -1: none."}
    )
    eval_rows: int = field(
        default=0, metadata={"help": "Held-out rows reranked for the reports; 0: all."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of list sizes, positions, training."})


@dataclass
class KitConfig:
    """All stages together: one object per TOML section."""

    text: TextConfig = field(default_factory=TextConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    rerank: RerankConfig = field(default_factory=RerankConfig)
    train_reranker: RerankerTrainConfig = field(default_factory=RerankerTrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    kaggle: KaggleConfig = field(default_factory=KaggleConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _choices(hint: Any) -> str:
    return ", ".join(repr(choice) for choice in typing.get_args(hint))


def _check_type(value: Any, expected: Any, where: str) -> Any:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        (expected,) = [arg for arg in typing.get_args(expected) if arg is not type(None)]
        return _check_type(value, expected, where)
    if origin is Literal:
        choices = typing.get_args(expected)
        if isinstance(value, bool) or not any(
            type(value) is type(choice) and value == choice for choice in choices
        ):
            raise ConfigError(
                f"{where}: {value!r} is not one of the allowed values {_choices(expected)}"
            )
        return value
    if origin is dict:
        key_type, value_type = typing.get_args(expected)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return {
            _check_type(k, key_type, where): _check_type(v, value_type, f"{where}.{k}")
            for k, v in value.items()
        }
    if origin is list:
        (item_type,) = typing.get_args(expected)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_check_type(item, item_type, f"{where}[{i}]") for i, item in enumerate(value)]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected int, got {value!r}")
    if not isinstance(value, expected):
        raise ConfigError(f"{where}: expected {expected.__name__}, got {value!r}")
    return value


def range_text(domain: tuple[float, float | None, bool]) -> str:
    low, high, low_open = domain
    if high is None:
        return f"> {low}" if low_open else f">= {low}"
    return f"in {'(' if low_open else '['}{low}, {high}]"


def _check_range(value: Any, domain: tuple[float, float | None, bool], where: str) -> None:
    low, high, low_open = domain
    if value is None:
        return
    if value < low or (low_open and value == low) or (high is not None and value > high):
        raise ConfigError(f"{where}: {value!r} is out of range; allowed: {range_text(domain)}")


def _build_section(
    cls: type, name: str, values: dict[str, Any], sources: dict[str, str], source: str
) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        where = ", ".join(sorted({sources.get(k, source) for k in unknown}))
        raise ConfigError(f"{where} [{name}]: unknown key(s) {unknown}; known: {sorted(known)}")
    checked = {}
    for key, value in values.items():
        where = f"{sources.get(key, source)} [{name}].{key}"
        checked[key] = _check_type(value, hints[key], where)
        if (name, key) in RANGES:
            _check_range(checked[key], RANGES[(name, key)], where)
    return cls(**checked)


def _check_together(
    config: KitConfig, values: dict[str, Any], sources: dict[tuple[str, str], str], source: str
) -> None:
    """Rules over several settings: a held-out fold is one of [evaluate] folds."""

    def named(section: str, key: str) -> str:
        given = key in values.get(section, {})
        where = sources.get((section, key), source if given else "default")
        return f"{where} [{section}].{key}"

    folds = config.evaluate.folds
    for section in ("train", "train_reranker"):
        val_fold = getattr(config, section).val_fold
        if not -1 <= val_fold < folds:
            raise ConfigError(
                f"{named(section, 'val_fold')}: {val_fold} is not a fold of "
                f"{named('evaluate', 'folds')} = {folds}; allowed: -1 (none) to {folds - 1}"
            )
    for i, pair in enumerate(config.train.negative_ranges):
        if len(pair) != 2 or not 1 <= pair[0] <= pair[1]:
            raise ConfigError(
                f"{named('train', 'negative_ranges')}[{i}]: {pair!r} is not a rank range "
                "[first, last] with 1 <= first <= last"
            )


def config_from_dict(
    values: dict[str, Any],
    source: str = "config",
    sources: dict[tuple[str, str], str] | None = None,
) -> KitConfig:
    """Build a KitConfig from nested dicts; any missing key keeps its default. Every value is
    checked (type, allowed choices, range, fold index); an error names where the value came
    from: `sources` maps (section, key) to it (a file, a flag), else `source`."""
    sources = sources or {}
    sections = {f.name: f for f in dataclasses.fields(KitConfig)}
    unknown = sorted(set(values) - set(sections))
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {unknown}; known: {sorted(sections)}")
    hints = typing.get_type_hints(KitConfig)
    built = {}
    for name, section in values.items():
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        section_sources = {key: where for (s, key), where in sources.items() if s == name}
        built[name] = _build_section(hints[name], name, section, section_sources, source)
    config = KitConfig(**built)
    _check_together(config, values, sources, source)
    return config


def load_config(
    path: str | Path | None,
    overrides: dict[str, dict[str, Any]] | None = None,
    override_sources: dict[tuple[str, str], str] | None = None,
) -> KitConfig:
    """Read a TOML config file (`None`: the defaults), then apply `overrides`, a dict of
    sections like the file's (`{"train": {"epochs": 1}}`), checked the same way. An error
    names the file, or for an override its entry in `override_sources` (a flag), else
    "overrides"."""
    values: dict[str, Any] = {}
    sources: dict[tuple[str, str], str] = {}
    source = "defaults"
    if path is not None:
        path, source = Path(path), str(path)
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise ConfigError(f"{path}: config file not found") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from err
    for section, settings in (overrides or {}).items():
        if not isinstance(settings, dict):
            raise ConfigError(f"overrides: [{section}] must be a dict of settings")
        values.setdefault(section, {}).update(settings)
        for key in settings:
            sources[(section, key)] = (override_sources or {}).get((section, key), "overrides")
    return config_from_dict(values, source=source, sources=sources)


def with_parameters(
    overrides: dict[str, dict[str, Any]] | None = None, **sections: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """`overrides` plus the values of `sections` that are not None: a notebook's parameters
    (`EPOCHS = None` means "as the config says") joined to its free-form overrides."""
    joined = {section: dict(values) for section, values in (overrides or {}).items()}
    for section, values in sections.items():
        given = {key: value for key, value in values.items() if value is not None}
        if given:
            joined.setdefault(section, {}).update(given)
    return joined


def command_settings(command: str) -> list[tuple[str, dataclasses.Field]]:
    """(section, field) of every setting that `eedi COMMAND` reads, in config order."""
    sections = {f.name: f for f in dataclasses.fields(KitConfig)}
    hints = typing.get_type_hints(KitConfig)
    settings = []
    for section in COMMAND_SECTIONS[command]:
        for setting in dataclasses.fields(hints[section]):
            commands = setting.metadata.get("commands")
            if commands is None or command in commands:
                settings.append((sections[section].name, setting))
    return settings


def parse_toml_value(text: str) -> Any:
    """A value in TOML syntax (`[[1, 10]]`, `"a"`, `{gpt = [1, 2]}`), as a command line gives
    lists and tables."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"not a TOML value: {text!r} ({err})") from err
