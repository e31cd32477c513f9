"""One fine-tuning run of a retriever: sentence-transformers' trainer, MNRL, no-duplicate
batches, hard negatives re-mined from the current model, optional LoRA, DDP through
accelerate/torchrun.

Re-mining runs between epochs: each epoch is one `trainer.train()` call that resumes from the
previous epoch's checkpoint (optimizer, scheduler and step restored by the library) on a
dataset carrying freshly mined negatives, and stops at the epoch's end. So the refresh happens
in plain code that tests can count, never in a callback hook that may silently not fire, and
`--resume` is the same mechanism.

A fresh run refuses an output folder that is not empty (as FlagEmbedding's fine-tuning runner
does): an earlier run's checkpoints and negatives are picked up only with `resume`, or cleared
first with `overwrite`. Saved negatives carry a record of what made them (settings, training
rows, the model mined from) and are mined again where it does not match.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from accelerate import PartialState
from accelerate.utils import release_memory
from datasets import Dataset
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.sentence_transformer import losses
from sentence_transformers.sentence_transformer.training_args import BatchSamplers
from transformers import PrinterCallback, TrainerCallback, TrainerState
from transformers.trainer_utils import get_last_checkpoint

from eedi_utils.config import KitConfig
from eedi_utils.data import CompetitionData
from eedi_utils.devices import quantization_kwargs, resolve_device, resolve_dtype
from eedi_utils.embedder import Embedder, encode, load_embedder
from eedi_utils.inputs import resolve_input_path
from eedi_utils.metrics import map_key, recall_key
from eedi_utils.prior import PRIOR_FILE, UnseenPrior, read_prior, write_prior
from eedi_utils.provenance import (
    RESOLVED_CONFIG,
    differing_settings,
    read_provenance,
    read_resolved_config,
)
from eedi_utils.train.lora import load_lora
from eedi_utils.train.retriever.data import prepare_data
from eedi_utils.train.retriever.mining import mine_negatives
from eedi_utils.train.retriever.model import (
    base_model_path,
    build_model,
    merged_model,
    mixed_precision_flags,
)
from eedi_utils.train.retriever.report import (
    CURVES_FILE,
    METRICS_FILE,
    PriorTuning,
    read_history,
    score_model,
    tune_unseen_prior,
    validation_embeddings,
    write_history,
)

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR, NEGATIVES_DIR = "checkpoints", "negatives"
RUN_ENTRIES = (
    CHECKPOINTS_DIR,
    NEGATIVES_DIR,
    METRICS_FILE,
    CURVES_FILE,
    PRIOR_FILE,
    RESOLVED_CONFIG,
)
"""What a run writes beside the model files: any of them marks a folder as a training run's."""
NOT_IN_NEGATIVES_KEY = ("unseen_prior_grid", "unseen_prior_from", "save_steps")
"""[train] settings that cannot change a round's negatives (applied after training, or only
when checkpoints are written); every other one is part of what made them."""
SCORED_IN_TRAINING = "model in training"
SCORED_AS_SAVED = "saved model, loaded as eedi predict loads it"
"""The `scored` of an epoch's report: the epochs before the last score the model in training,
the last one the saved model (`RetrieverTraining.loading_label` adds its dtype and device)."""


class OutputDirNotEmpty(ValueError):
    """A fresh run was given a folder that already holds something."""


def check_output_dir(output_dir: str | Path, resume: bool = False, overwrite: bool = False) -> None:
    """Refuse to start a fresh run in a non-empty folder: an earlier run's checkpoints and
    negatives would be picked up. `resume` goes on from them; `overwrite` may clear a folder
    that holds a training run (never one that holds none of `RUN_ENTRIES`)."""
    output_dir = Path(output_dir)
    if resume and overwrite:
        raise ValueError(
            f"--resume keeps the earlier run in {output_dir} and --overwrite-output-dir clears "
            "it: give one of them"
        )
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputDirNotEmpty(f"output folder {output_dir} is a file")
    if resume or not output_dir.is_dir() or not any(output_dir.iterdir()):
        return
    if not overwrite:
        raise OutputDirNotEmpty(
            f"output folder {output_dir} already exists and is not empty: pass --resume to go on "
            "from its last checkpoint, or --overwrite-output-dir to clear it (checkpoints, "
            "negatives, model files) and train afresh (train notebook: RESUME or "
            "OVERWRITE_OUTPUT_DIR = True)"
        )
    if not any((output_dir / entry).exists() for entry in RUN_ENTRIES):
        raise OutputDirNotEmpty(
            f"output folder {output_dir} is not empty and holds no training run (none of "
            f"{', '.join(RUN_ENTRIES)}): --overwrite-output-dir clears only a training run's "
            "folder; choose a new or an empty one"
        )


def clear_output_dir(output_dir: Path) -> list[str]:
    """Delete everything in `output_dir` (the folder itself stays); the names removed."""
    removed = []
    for entry in sorted(output_dir.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry.name)
    return removed


def digest(value) -> str:
    """sha256 of a JSON-able value."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def folder_digest(folder: Path) -> str:
    """sha256 of the relative path and size of every file under `folder` (cheap for large
    models; a replaced weight file of another size changes it)."""
    files = sorted(
        (str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file()
    )
    return digest(files)


def differences(stored: dict, current: dict) -> list[str]:
    """What differs between two records of `RetrieverTraining.negatives_record`."""
    found = []
    for section, values in current.get("settings", {}).items():
        before = stored.get("settings", {}).get(section, {})
        for key in sorted(set(values) | set(before)):
            if values.get(key) != before.get(key):
                found.append(f"[{section}] {key} {before.get(key)!r} -> {values.get(key)!r}")
    if stored.get("data") != current.get("data"):
        found.append("the training rows or their texts")
    model, before = current.get("model", {}), stored.get("model", {})
    changed = [key for key in sorted(set(model) | set(before)) if model.get(key) != before.get(key)]
    if changed:
        found.append(f"the model mined from ({', '.join(changed)})")
    return found or ["another record"]


PRIOR_CHECKED = {
    "train": ("base_model", "pooling", "epochs", "loss", "scale", "n_negatives", "lora_r"),
    "retrieval": ("max_seq_length",),
    "text": ("query_template", "misconception_template", "query_instruction"),
}
"""Settings a CV run and the final run should share for the CV's prior strength to carry
over; a difference is logged, not refused (a final run may train longer on purpose)."""


def final_prior_strength(config: KitConfig, output_dir: Path) -> tuple[float, str]:
    """The unseen-prior strength of a run with no validation rows, and where it came from:
    `[retrieval] unseen_prior` when set, else the strength stored by the CV run that
    `[train] unseen_prior_from` names (a folder of `eedi train` with a held-out fold, not
    `output_dir`), else 0 with a warning. Called before training, so a bad source stops the
    run before any work."""
    source = config.train.unseen_prior_from
    if config.retrieval.unseen_prior is not None:
        if source:
            logger.warning(
                "[retrieval] unseen_prior = %s is set: it wins over [train] unseen_prior_from",
                config.retrieval.unseen_prior,
            )
        return config.retrieval.unseen_prior, "[retrieval] unseen_prior"
    if not source:
        why = (
            "no validation rows and neither [train] unseen_prior_from (a CV run's folder) nor "
            "[retrieval] unseen_prior is set: 0 stored (no prior)"
        )
        logger.warning(why)
        return 0.0, why
    if Path(source).resolve() == Path(output_dir).resolve():
        raise ValueError(
            f"[train] unseen_prior_from = {source!r} is this run's own output folder: train the "
            "final model into a new folder, so the CV run stays beside it"
        )
    folder = resolve_input_path(source, dataset=config.kaggle.model_dataset)
    provenance = read_provenance(folder)
    prior = read_prior(folder)
    if provenance.trained_on != "fold" or prior is None:
        raise ValueError(
            f"[train] unseen_prior_from = {source!r}: not a CV run of `eedi train` (a folder "
            f"with a held-out fold and {PRIOR_FILE}): {provenance.detail}"
        )
    cv_config = read_resolved_config(folder) or {}
    changed = differing_settings(cv_config, config.to_dict(), PRIOR_CHECKED)
    if changed:
        logger.warning(
            "the CV run %s was trained with other %s: its prior strength may not fit this model",
            source,
            ", ".join(changed),
        )
    return prior.strength, f"tuned by the CV run {source} on its fold {provenance.val_fold}"


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


def completed_epochs(checkpoint: Path | None) -> int:
    """Whole epochs done by a trainer checkpoint (from its trainer_state.json); 0 for none."""
    if checkpoint is None:
        return 0
    state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    return int(state.epoch + 1e-6)


class RetrieverTraining:
    """One fine-tuning run into `output_dir`; `run()` trains, evaluates each epoch and saves."""

    def __init__(
        self,
        data: CompetitionData,
        output_dir: str | Path,
        config: KitConfig,
        callbacks: list[TrainerCallback] | None = None,
    ):
        self.config, self.output_dir = config, Path(output_dir)
        self.callbacks = list(callbacks or [])
        self.device = resolve_device(config.retrieval.device)
        # the trainer's arguments set up accelerate's process state (transformers 5.19
        # training_args.py resets it and, on CPU, passes cpu=True, without which torchrun's
        # processes are each "process 0 of 1": accelerate 1.15 state.py `_prepare_backend`);
        # made first, so clearing the output folder and epoch 0 already see the group
        self.training_arguments = self.arguments()
        self.state = PartialState()
        if self.state.num_processes > 1:
            self.device = str(self.state.device)
        self.data = prepare_data(data, config)
        # the saved model is scored as predict loads it (`run`): [retrieval] settings that
        # cannot load it stop a run with validation rows here, not after training
        self.saved_label = self.loading_label() if len(self.data.val_gold) else ""
        self.mining_calls = 0
        self.history: list[dict] = []
        self.prior_tuning: PriorTuning | None = None
        self.prior_source = ""
        self.seconds = {"mining": 0.0, "training": 0.0, "evaluation": 0.0}

    @property
    def checkpoints_dir(self) -> Path:
        return self.output_dir / CHECKPOINTS_DIR

    def latest_checkpoint(self) -> Path | None:
        if not self.checkpoints_dir.is_dir():
            return None
        found = get_last_checkpoint(str(self.checkpoints_dir))
        return Path(found) if found else None

    # --- negatives -------------------------------------------------------------------------
    def negatives_record(self, round_index: int) -> dict:
        """What makes this round's negatives: the [train] settings (less
        `NOT_IN_NEGATIVES_KEY`) and [retrieval] max_seq_length, a digest of the training rows'
        ids, texts and gold ids and of the documents, and the model they are mined from (the
        base model's folder and files, and the epochs trained before this round)."""
        cfg, data = self.config.train, self.data
        base = base_model_path(cfg, self.config.kaggle.model_dataset)
        record = {
            "settings": {
                "train": {k: v for k, v in asdict(cfg).items() if k not in NOT_IN_NEGATIVES_KEY},
                "retrieval": {"max_seq_length": self.config.retrieval.max_seq_length},
            },
            "data": digest(
                {
                    "row_ids": data.row_ids,
                    "queries": data.queries,
                    "gold": data.gold.tolist(),
                    "documents": data.documents,
                    "document_ids": data.document_ids.tolist(),
                    "variants": sorted(data.variants.items()),
                }
            ),
            "model": {
                "base_model": str(base.resolve()),
                "base_files": folder_digest(base),
                "epochs_trained": round_index * cfg.remine_every if cfg.remine_every > 0 else 0,
            },
        }
        return json.loads(json.dumps(record))  # as it reads back from the file

    def cached_negatives(self, path: Path, round_index: int) -> bool:
        """Whether `path` holds this round's negatives made exactly as this run would make
        them (its record beside it says so); one line on why when it does not."""
        if not path.exists():
            return False
        record, made_by = self.negatives_record(round_index), path.with_suffix(".json")
        try:
            stored = json.loads(made_by.read_text())
        except (OSError, ValueError):
            stored = None
        if stored == record:
            return True
        why = (
            "no record of what made them"
            if not isinstance(stored, dict)
            else "made with " + "; ".join(differences(stored, record))
        )
        logger.warning("negatives %s not reused, %s: mining them again", path, why)
        return False

    def mine(self, model: SentenceTransformer, round_index: int) -> np.ndarray:
        """Mine this round's negatives on the main process, saved with a record of what made
        them (a resumed run reuses them only where that record matches); every rank gets the
        same ones."""
        path = self.output_dir / NEGATIVES_DIR / f"round-{round_index}.npy"
        if self.state.is_main_process and not self.cached_negatives(path, round_index):
            cfg = self.config.train
            first, last = cfg.negative_ranges[min(round_index, len(cfg.negative_ranges) - 1)]
            logger.info("mining round %d: ranks %d-%d", round_index, first, last)
            started = time.perf_counter()
            pool = self.negative_pool()
            negatives = pool[
                mine_negatives(
                    encode(model, self.data.queries, self.config.retrieval),
                    encode(model, [self.data.documents[p] for p in pool], self.config.retrieval),
                    self.data.document_ids[pool],
                    self.data.gold,
                    cfg.n_negatives,
                    (first, last),
                    cfg.negative_margin,
                    cfg.negative_relative_margin,
                    seed=cfg.seed + round_index,
                )
            ]
            path.parent.mkdir(parents=True, exist_ok=True)
            made_by = path.with_suffix(".json")
            made_by.unlink(missing_ok=True)  # no stale record beside a file being replaced
            np.save(path, negatives)
            made_by.write_text(json.dumps(self.negatives_record(round_index), indent=2))
            self.mining_calls += 1
            self.seconds["mining"] += time.perf_counter() - started
        self.state.wait_for_everyone()
        return np.load(path)

    def negative_pool(self) -> np.ndarray:
        """Positions of the documents negatives are mined among (`[train] negatives_from`)."""
        ids = self.data.document_ids
        if self.config.train.negatives_from == "all":
            return np.arange(len(ids))
        return np.flatnonzero(np.isin(ids, np.unique(self.data.gold)))

    def dataset(self, negatives: np.ndarray | None, round_index: int) -> Dataset:
        """(anchor, positive, negative_1..n) rows; positives and negatives take this round's
        text of each misconception."""
        texts = self.data.round_texts(round_index, self.config.train.seed)
        columns = {"anchor": self.data.queries, "positive": self.data.positives(texts)}
        if negatives is not None:
            for i in range(negatives.shape[1]):
                columns[f"negative_{i + 1}"] = [texts[p] for p in negatives[:, i]]
        return Dataset.from_dict(columns)

    # --- training --------------------------------------------------------------------------
    def arguments(self) -> SentenceTransformerTrainingArguments:
        cfg = self.config.train
        return SentenceTransformerTrainingArguments(
            output_dir=str(self.checkpoints_dir),
            num_train_epochs=cfg.epochs,
            per_device_train_batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            warmup_steps=cfg.warmup_ratio,  # a float below 1 is a ratio in transformers 5
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
            **mixed_precision_flags(cfg.mixed_precision, self.device),
        )

    def loss(self, model: SentenceTransformer):
        cfg = self.config.train
        if cfg.loss == "mnrl":  # the loader allows only mnrl and cached_mnrl
            return losses.MultipleNegativesRankingLoss(model, scale=cfg.scale)
        return losses.CachedMultipleNegativesRankingLoss(
            model, scale=cfg.scale, mini_batch_size=cfg.mini_batch_size
        )

    def starting_model(self, checkpoint: Path | None) -> SentenceTransformer:
        """The base model, or the checkpoint's weights (a LoRA adapter comes back trainable)."""
        cfg, max_length = self.config.train, self.config.retrieval.max_seq_length
        dataset = self.config.kaggle.model_dataset
        if checkpoint is None:
            return build_model(cfg, max_length, self.device, dataset)
        if cfg.lora_r:
            model = build_model(replace(cfg, lora_r=0), max_length, self.device, dataset)
            load_lora(model, checkpoint)
            return model
        return SentenceTransformer(str(checkpoint), device=self.device, local_files_only=True)

    def record(self, model: Embedder, epoch: int, scored: str = SCORED_IN_TRAINING) -> None:
        """Score the validation rows after `epoch` epochs (replacing an earlier report of that
        epoch) and rewrite metrics.json and curves; `scored` says which model was scored."""
        if not (len(self.data.val_gold) and self.state.is_main_process):
            return
        started = time.perf_counter()
        report = {"epoch": epoch, "scored": scored, **score_model(model, self.data, self.config)}
        self.seconds["evaluation"] += time.perf_counter() - started
        top_k = self.config.retrieval.top_k
        keys = (map_key(top_k), recall_key(top_k))
        logger.info("epoch %d: %s (%s)", epoch, {k: report[k] for k in keys}, scored)
        others = [h for h in self.history if h["epoch"] != epoch]
        self.history = sorted([*others, report], key=lambda h: h["epoch"])
        write_history(self.history, self.output_dir, top_k)

    def loading_label(self) -> str:
        """The `scored` of the last epoch's report: the saved model, loaded as `eedi predict`
        loads it, with the dtype, device and bits `load_embedder` resolves; raises for
        [retrieval] settings that cannot load it (`resolve_dtype`, `quantization_kwargs`)."""
        retrieval = self.config.retrieval
        device = resolve_device(retrieval.device)
        loaded = str(resolve_dtype(retrieval.dtype, device))  # the layers left unquantised
        if retrieval.load_in_bits:
            quantization_kwargs(retrieval.load_in_bits, device)
            loaded += f", {retrieval.load_in_bits}-bit"
        if retrieval.load_in_bits == 4:  # it computes in the device's half dtype
            loaded += f", computing {resolve_dtype('auto', device)}"
        return f"{SCORED_AS_SAVED} ({loaded}, {device})"

    def store_prior(self, model: Embedder, final: tuple[float, str] | None) -> None:
        """Tune the unseen prior on the validation rows, or for a run without any store
        `final` (`final_prior_strength`, resolved before training), and store it, with the
        ids the training rows label and where its strength came from, in the model folder."""
        if final is None:
            embeddings = validation_embeddings(model, self.data, self.config)
            self.prior_tuning = tune_unseen_prior(*embeddings, self.data, self.config)
            prior = self.prior_tuning.prior
            self.prior_source = (
                f"tuned on fold {self.config.train.val_fold} by map@25_lb "
                "(report the cross-fitted row, not the best of the table)"
            )
            logger.info("unseen prior %s tuned: %s", prior.strength, self.prior_tuning.table)
        else:
            strength, self.prior_source = final
            prior = UnseenPrior(strength, self.data.labelled_ids())
        tuning = self.prior_tuning
        write_prior(
            self.output_dir,
            prior,
            self.prior_source,
            tuning.table if tuning else None,
            tuning.cross_fitted if tuning else None,
            tuning.notes if tuning else None,
        )

    def run(self, resume: bool = False, overwrite: bool = False) -> Embedder:
        """Train into `output_dir`, which must be empty or new unless `resume` (go on from its
        last checkpoint) or `overwrite` (clear the earlier run there first); see
        `check_output_dir`. With validation rows, the last epoch's report, the stored prior and
        the model returned are the saved model's, loaded as `eedi predict` loads it
        ([retrieval] dtype, device, bits); without, the trained one (for LoRA the merged one,
        for QLoRA on the CPU) is returned. Under torchrun the other processes return the model
        they trained once it is saved."""
        check_output_dir(self.output_dir, resume, overwrite)
        final = None
        if not len(self.data.val_gold):  # a bad prior source stops the run before any work
            final = final_prior_strength(self.config, self.output_dir)
        self.state.wait_for_everyone()  # every rank checked before anything is cleared
        if overwrite and self.state.is_main_process and self.output_dir.is_dir():
            removed = clear_output_dir(self.output_dir)
            if removed:
                logger.info("cleared the earlier run in %s: %s", self.output_dir, removed)
        self.state.wait_for_everyone()
        cfg = self.config.train
        checkpoint = self.latest_checkpoint() if resume else None
        if resume and checkpoint is None:
            logger.warning("--resume: no checkpoint in %s, starting afresh", self.output_dir)
        if checkpoint is not None:
            self.history = read_history(self.output_dir)
        model = self.starting_model(checkpoint)
        if checkpoint is None and cfg.epochs:  # with no epoch, epoch 0 is scored as saved
            self.record(model, 0)
        self.train_epochs(model, checkpoint)
        if cfg.lora_r and self.state.is_main_process:  # other ranks save nothing
            max_length = self.config.retrieval.max_seq_length
            dataset = self.config.kaggle.model_dataset
            model = merged_model(model, cfg, max_length, self.device, dataset)
            release_memory()  # a QLoRA run's 4-bit model: its merge is saved from the CPU
        if self.state.is_main_process:
            model.save(str(self.output_dir))
            (self.output_dir / RESOLVED_CONFIG).write_text(  # what it trained on, first
                json.dumps(self.config.to_dict(), indent=2)
            )
        self.state.wait_for_everyone()  # the model is saved: no collective after this one
        if not self.state.is_main_process:
            return model
        if final is not None:  # no validation rows: nothing to score, the prior is given
            self.store_prior(model, final)
            write_history(self.history, self.output_dir, self.config.retrieval.top_k)
            return model
        # Scored and returned as predict will load it, not in its training precision (the
        # weights as loaded for training, under the trainer's autocast when mixed precision is
        # on): the model in memory is released first, so two copies never share the device.
        del model
        release_memory()
        started = time.perf_counter()
        model = load_embedder(self.output_dir, self.config.retrieval)
        self.seconds["evaluation"] += time.perf_counter() - started
        self.record(model, completed_epochs(self.latest_checkpoint()), self.saved_label)
        self.store_prior(model, final)
        return model

    def train_epochs(self, model: SentenceTransformer, checkpoint: Path | None) -> None:
        """The epochs left after `checkpoint` (None: all), each with its negatives mined and,
        but for the last (`run` scores the saved model), its validation recorded; the trainers
        and the loss are gone when it returns."""
        cfg = self.config.train
        loss, arguments = self.loss(model), self.training_arguments
        for epoch in range(completed_epochs(checkpoint), cfg.epochs):
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
            if epoch + 1 < cfg.epochs:  # the last epoch is scored as saved (`run`)
                self.record(model, epoch + 1)
