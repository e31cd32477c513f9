"""Weight-space levers at no inference cost: average several fine-tuned models of one
architecture (seeds or folds), and interpolate toward the base model (WiSE-FT).

    merged = (1 - alpha) * base + alpha * mean(fine-tuned models)

The result is a plain sentence-transformers folder; `eedi merge` writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

from eedi_utils.prior import UnseenPrior, read_prior, write_prior


def _state(path: str | Path) -> tuple[SentenceTransformer, dict[str, torch.Tensor]]:
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    return model, {k: v.detach().clone() for k, v in model.state_dict().items()}


def merge_models(
    models: Sequence[str | Path],
    out: str | Path,
    base: str | Path | None = None,
    alpha: float = 1.0,
) -> Path:
    """Average `models` and interpolate the average toward `base` by `alpha` (1: no base);
    save the result in `out`. The models' stored unseen priors carry over: the union of their
    labelled ids with the first model's strength (retune it on the CV for the merged model)."""
    if not models:
        raise ValueError("merge needs at least one model folder")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if alpha < 1.0 and base is None:
        raise ValueError("alpha < 1 interpolates toward a base model: name it (--base)")
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
    priors = [p for p in (read_prior(m) for m in models) if p is not None]
    if priors:
        labelled = frozenset().union(*(p.labelled_ids for p in priors))
        write_prior(out, UnseenPrior(priors[0].strength, labelled))
    return out
