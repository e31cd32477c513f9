"""Weight-space levers at no inference cost: average several fine-tuned models of one
architecture (seeds or folds), and interpolate toward the base model (WiSE-FT).

    merged = (1 - alpha) * base + alpha * mean(fine-tuned models)

The result is a plain sentence-transformers folder; `eedi merge` writes it, with a
resolved_config.json saying what its members trained on (`provenance.merged_config`), so CV
scores it only on rows none of them saw.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

from eedi_utils.cpu_embedder import refuse_export
from eedi_utils.prior import PRIOR_FILE, UnseenPrior, read_prior, write_prior
from eedi_utils.provenance import RESOLVED_CONFIG, merged_config

logger = logging.getLogger(__name__)


def _state(path: str | Path) -> tuple[SentenceTransformer, dict[str, torch.Tensor]]:
    refuse_export(path, "merging")
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    return model, {k: v.detach().clone() for k, v in model.state_dict().items()}


def merge_models(
    models: Sequence[str | Path],
    out: str | Path,
    base: str | Path | None = None,
    alpha: float = 1.0,
) -> Path:
    """Average `models` and interpolate the average toward `base` by `alpha` (1: no base);
    save the result in `out` with its resolved_config.json (see `provenance.merged_config`).
    The members' stored unseen priors carry over: the union of their labelled ids, and their
    strength where they agree; where they differ, their mean, with a warning (retune it on the
    merged model's held-out fold: `eedi evaluate --model OUT --unseen-prior S`)."""
    if not models:
        raise ValueError("merge needs at least one model folder")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if alpha < 1.0 and base is None:
        raise ValueError("alpha < 1 interpolates toward a base model: name it (--base)")
    record = merged_config(models, alpha, base)  # before any work: refuses mixed splits
    first, merged = _state(models[0])
    for path in models[1:]:
        _, state = _state(path)
        if state.keys() != merged.keys():
            raise ValueError(f"{path} is not the architecture of {models[0]}: cannot average")
        for key, value in state.items():
            if value.is_floating_point():
                merged[key] += value
    for key, value in merged.items():
        if value.is_floating_point():
            merged[key] = value / len(models)
    if alpha < 1.0:
        _, start = _state(base)
        if start.keys() != merged.keys():
            raise ValueError(f"{base} is not the architecture of {models[0]}: cannot interpolate")
        for key, value in merged.items():
            if value.is_floating_point():
                merged[key] = (1 - alpha) * start[key] + alpha * value
    first.load_state_dict(merged)
    out = Path(out)
    first.save(str(out))
    for stale in (RESOLVED_CONFIG, PRIOR_FILE):  # an earlier merge's, never this one's
        (out / stale).unlink(missing_ok=True)
    if record is None:
        logger.warning(
            "no member has a %s: the merged model is taken, like them, as trained on no train row",
            RESOLVED_CONFIG,
        )
    else:
        (out / RESOLVED_CONFIG).write_text(json.dumps(record, indent=2))
    priors = [p for p in (read_prior(m) for m in models) if p is not None]
    if priors:
        labelled = frozenset().union(*(p.labelled_ids for p in priors))
        strengths = sorted({p.strength for p in priors})
        strength = sum(p.strength for p in priors) / len(priors)
        source = f"the merged members' strength {strengths[0]}"
        if len(strengths) > 1:
            source = (
                f"the mean of the merged members' strengths {strengths}; retune it on the "
                "merged model's held-out fold"
            )
            logger.warning("unseen prior %.4g stored: %s", strength, source)
        write_prior(out, UnseenPrior(strength, labelled), source)
    return out
