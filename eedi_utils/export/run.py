"""`eedi export`: write a model folder for a CPU runtime, quantise it on the competition's texts
when asked, and score it against its source on the fold the source held out.

The folder holds the graph (`cpu_embedder.MODEL_FILES`), the tokenizer, the source's
resolved_config.json and stored unseen prior (so CV and the prior work on it as on the source)
and `export.json`: format, precision, source, calibration and the check's scores.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from sentence_transformers import SentenceTransformer

from eedi_utils import __version__, pipeline
from eedi_utils.config import KitConfig
from eedi_utils.cpu import INT8_FLAGS, cpu_flags, cpu_name
from eedi_utils.cpu_embedder import (
    EXPORT_FILE,
    MODEL_FILES,
    is_exported,
    tokenizer_record,
)
from eedi_utils.data import CompetitionData, labelled
from eedi_utils.embedder import default_model_path
from eedi_utils.export.graph import openvino_model, write_onnx
from eedi_utils.export.int8 import (
    calibration_samples,
    calibration_texts,
    quantize_onnx,
    quantize_openvino,
)
from eedi_utils.extras import require
from eedi_utils.metrics import lb_key, map_key
from eedi_utils.prior import PRIOR_FILE
from eedi_utils.provenance import RESOLVED_CONFIG
from eedi_utils.splits import config_folds
from eedi_utils.text import misconception_texts, query_texts

logger = logging.getLogger(__name__)


class ExportCheckFailed(RuntimeError):
    """The export ranks worse than its source by more than `[export] tolerance`; `record` is
    what its export.json holds."""

    def __init__(self, message: str, record: dict[str, Any]):
        super().__init__(message)
        self.record = record


@dataclass(frozen=True)
class CheckFold:
    """The fold the check scores (None: none can be, and why) and the rows it leaves for
    calibration."""

    fold: int | None
    fine_tuned: bool
    calibration_rows: Any
    reason: str


def check_output_folder(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty folder; `overwrite` may replace one that holds an export only (once
    the new one is complete)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {out} is a file")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise ValueError(f"output folder {out} is not empty: pass --overwrite to replace it")
    if not is_exported(out):
        raise ValueError(
            f"output folder {out} is not empty and holds no export ({EXPORT_FILE}): "
            "--overwrite replaces an earlier export only; choose a new or an empty folder"
        )


def check_fold(source: Path, data: CompetitionData, config: KitConfig) -> CheckFold:
    """The fold the source held out (a base model: fold 0 of `[evaluate]`); calibration texts
    come from the other folds' rows, so the check scores rows int8 was not calibrated on.
    `config`'s split becomes the source's."""
    train = labelled(data.train())
    held = pipeline.held_out_fold([source], config)
    held.apply(config)
    folds = config_folds(train, config.evaluate)
    if held.fine_tuned and held.fold is None:
        return CheckFold(None, True, list(range(len(train))), held.reason)
    fold = held.fold if held.fine_tuned else 0
    reason = held.reason if held.fine_tuned else f"a base model: scoring fold {fold}"
    return CheckFold(fold, held.fine_tuned, folds[fold].train_rows, reason)


def _scores(report: dict[str, Any], k: int) -> dict[str, Any]:
    key = map_key(k)
    return {
        key: report[key],
        "seen": report["seen"][key],
        "unseen": report["unseen"][key],
        lb_key(k): report[lb_key(k)],
        "rows": report["n"],
    }


def compare(
    source: Path, out: Path, data: CompetitionData, config: KitConfig, held: CheckFold
) -> dict[str, Any]:
    """Both models ranked on the check fold with the same settings (the stored prior too): the
    source in fp32 torch, the export as it runs on this CPU."""
    k = config.retrieval.top_k
    fold = None if held.fine_tuned else held.fold
    reference, exported = copy.deepcopy(config), copy.deepcopy(config)
    reference.retrieval = replace(config.retrieval, dtype="float32", devices=[], device="cpu")
    exported.retrieval = replace(config.retrieval, devices=[])
    before = _scores(pipeline.evaluate(data, [source], reference, fold), k)
    after = _scores(pipeline.evaluate(data, [out], exported, fold), k)
    drop = before[lb_key(k)] - after[lb_key(k)]
    passed = drop <= config.export.tolerance
    summary = (
        f"{lb_key(k)} {after[lb_key(k)]:.4f} against the source's {before[lb_key(k)]:.4f} "
        f"(drop {drop:+.4f}, tolerance {config.export.tolerance}) on fold {held.fold}"
    )
    return {
        "fold": held.fold,
        "scored": held.reason,
        "source_fp32": before,
        "export": after,
        "drop": round(drop, 4),
        "tolerance": config.export.tolerance,
        "passed": passed,
        "summary": summary,
    }


def _save_graph(
    model: SentenceTransformer, out: Path, config: KitConfig, samples: list | None
) -> None:
    target = out / MODEL_FILES[config.export.format]
    if config.export.format == "onnx":
        if samples is None:
            write_onnx(model, target)
            return
        with tempfile.TemporaryDirectory() as scratch:
            quantize_onnx(write_onnx(model, Path(scratch) / "fp32.onnx"), target, samples)
        return
    openvino = require("openvino", "exporting to OpenVINO")
    graph = openvino_model(model)
    if samples is not None:
        graph = quantize_openvino(graph, samples, config.retrieval.show_progress)
    openvino.save_model(graph, str(target), compress_to_fp16=False)


def text_handling_not_exported(model: SentenceTransformer) -> str | None:
    """What `model.encode` (as the kit calls it: no prompt, no task) does around the forward
    pass that an export, which tokenises the raw text with tokenizer.json and returns the
    graph's whole embedding, would not do; None when nothing. In sentence-transformers 6.2:
    a first module with the "message" modality renders each text through the chat template
    (recorded in sentence_bert_config.json, else inferred from a tokenizer that has one:
    base/modules/transformer.py `__init__`, `preprocess`); `processing_kwargs` are merged into
    every tokenizer call; a Router picks its route per task (base/modules/router.py); the
    default prompt is prepended; `truncate_dim` cuts the embedding after the forward pass."""
    from sentence_transformers.base.modules.transformer import Transformer

    first = model[0]
    if not isinstance(first, Transformer):
        return f"starts with a {type(first).__name__} module, not a Transformer"
    if "message" in first.modality_config:
        return "renders each text through its tokenizer's chat template (the message modality)"
    extra = {key: value for key, value in first.processing_kwargs.items() if value}
    if extra.keys() & {"common", "text"}:
        return f"passes processing_kwargs {extra} to its tokenizer"
    if model.default_prompt_name and model.prompts.get(model.default_prompt_name):
        return f"prepends its default prompt {model.default_prompt_name!r} to each text"
    if model.truncate_dim:
        return f"cuts each embedding to truncate_dim = {model.truncate_dim}"
    return None


def export_model(
    source: str | Path | None,
    out: str | Path,
    data: CompetitionData,
    config: KitConfig,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Export `source` (None: the bundled model) into `out` as `[export]` asks; returns the
    export record. The export is made in a sibling folder and moved to `out` when complete, so
    a failure leaves an earlier export in place. Raises `ExportCheckFailed` (the folder
    written, the failure recorded in its export.json) when the check's drop passes the
    tolerance."""
    source = Path(source) if source is not None else default_model_path()
    out = Path(out)
    if not source.is_dir():
        raise FileNotFoundError(f"model folder not found: {source}")
    if is_exported(source):
        raise ValueError(f"{source} is already an export ({EXPORT_FILE}): export its source")
    check_output_folder(out, overwrite)
    config = copy.deepcopy(config)
    settings = config.export
    int8 = settings.quantize == "int8"
    if (int8 or settings.check) and not data.has_train:
        raise ValueError(
            f"{'int8 calibration' if int8 else 'the export check'} needs train.csv in the data "
            "folder (--data-dir); without it, export with --no-export-check and no int8"
        )
    held = check_fold(source, data, config) if data.has_train else None
    model = SentenceTransformer(
        str(source), device="cpu", local_files_only=True, model_kwargs={"dtype": torch.float32}
    )  # a folder saved in half precision (a merged QLoRA) is traced in fp32 all the same
    if not model.max_seq_length or not model.get_embedding_dimension():
        raise ValueError(f"{source}: the model states no max_seq_length or embedding size")
    unsupported = text_handling_not_exported(model)
    if unsupported:
        raise ValueError(
            f"{source}: under sentence-transformers the model {unsupported}; an export "
            "tokenises the raw text and returns the whole embedding, so it would rank "
            "differently. Export a plain text encoder (such as the bundled MiniLM), or rank "
            "this one in torch (`eedi predict --model` on its folder)"
        )
    record: dict[str, Any] = {
        "format": settings.format,
        "precision": "int8" if int8 else "fp32",
        "source": str(source.resolve()),
        "max_seq_length": model.max_seq_length,
        "dimension": model.get_embedding_dimension(),
        "tokenizer": tokenizer_record(model.tokenizer),
        "kit_version": __version__,
        "cpu": cpu_name(),
        "cpu_flags": sorted(cpu_flags() & set(INT8_FLAGS)),
        "calibration": None,
        "check": None,
    }
    samples = None
    if int8:
        train = labelled(data.train()).iloc[held.calibration_rows]
        texts = calibration_texts(
            query_texts(train, config.text),
            misconception_texts(data.misconceptions, config.text),
            settings.calibration_texts,
            config.evaluate.seed,
        )
        length = min(config.retrieval.max_seq_length, model.max_seq_length)
        samples = calibration_samples(texts, model.tokenizer, length)
        record["calibration"] = {
            "texts": len(texts),
            "from": f"queries of rows outside fold {held.fold} and misconception names"
            if held.fold is not None
            else "queries of every labelled row and misconception names",
        }
    partial = out.with_name(f"{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    _save_graph(model, partial, config, samples)
    model.tokenizer.save_pretrained(str(partial))
    for name in (RESOLVED_CONFIG, PRIOR_FILE):
        if (source / name).is_file():
            shutil.copy2(source / name, partial / name)
    del model
    (partial / EXPORT_FILE).write_text(json.dumps(record, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    record_path = out / EXPORT_FILE
    if not settings.check:
        return record
    if held.fold is None:
        logger.warning("export check skipped: %s", held.reason)
        record["check"] = {"passed": None, "summary": f"not checked: {held.reason}"}
    else:
        record["check"] = compare(source, out, data, config, held)
    record_path.write_text(json.dumps(record, indent=2))
    if record["check"]["passed"] is False:
        raise ExportCheckFailed(
            f"{out}: {record['check']['summary']}. The folder is kept (its {EXPORT_FILE} "
            "records the failure and loading it warns); try --export-format openvino, more "
            "--export-calibration-texts, no int8, or a larger --export-tolerance",
            record,
        )
    return record
