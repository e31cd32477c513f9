"""What a model folder trained on: which fold of which split it held out, or that it saw every
labelled row, or that nobody can tell. Every CV figure of a trained model is scored on rows it
never saw, so every command that scores or reuses a model reads this first.

`eedi train` writes `resolved_config.json` (its whole config); `eedi merge` writes one for the
merged folder from its members' (see `merged_config`). A folder with neither file is taken as
a model that trained on no train row (the bundled base model, any public checkpoint).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESOLVED_CONFIG = "resolved_config.json"
"""What `eedi train` writes beside the model: the full config it trained with."""
MERGED_FROM = "merged_from"
"""Key of `resolved_config.json` listing what a merged model was made of."""


@dataclass(frozen=True)
class Split:
    """An [evaluate] split: fold count, seed and grouping column."""

    folds: int
    seed: int
    group_by: str

    def describe(self) -> str:
        return f"{self.folds} folds grouped by {self.group_by}, seed {self.seed}"


@dataclass(frozen=True)
class Provenance:
    """What one model folder trained on. `val_fold`: the fold it held out (None: none, see
    `trained_on`); `trained_on` is "nothing" (no record: a base model), "fold" (all but
    `val_fold` of `split`), "everything" (val_fold = -1, or members with different folds) or
    "unknown" (merged from a folder without a record)."""

    path: str
    trained_on: str
    val_fold: int | None = None
    split: Split | None = None
    detail: str = ""


def read_resolved_config(folder: str | Path) -> dict[str, Any] | None:
    """The resolved config stored in a model folder, None when it has none."""
    path = Path(folder) / RESOLVED_CONFIG
    return json.loads(path.read_text()) if path.is_file() else None


def differing_settings(
    recorded: dict[str, Any], current: dict[str, Any], keys: dict[str, tuple[str, ...]]
) -> list[str]:
    """`[section] key` of each of `keys` whose value in a recorded config (a folder's
    resolved_config.json) differs from `current` (`KitConfig.to_dict()`)."""
    return [
        f"[{section}] {key}"
        for section, names in keys.items()
        for key in names
        if recorded.get(section, {}).get(key) != current[section][key]
    ]


def _split(config: dict[str, Any]) -> Split:
    evaluate = config["evaluate"]
    # models trained before group_by existed were split by question
    return Split(evaluate["folds"], evaluate["seed"], evaluate.get("group_by", "QuestionId"))


def read_provenance(folder: str | Path) -> Provenance:
    """What the model in `folder` trained on, from its resolved_config.json."""
    config = read_resolved_config(folder)
    if config is None:
        return Provenance(str(folder), "nothing", detail="no resolved_config.json: a base model")
    unknown = [m["path"] for m in config.get(MERGED_FROM, []) if m["trained_on"] == "unknown"]
    if unknown:
        detail = f"merged from folders with no record of their training rows: {unknown}"
        return Provenance(str(folder), "unknown", detail=detail)
    val_fold = config["train"]["val_fold"]
    if val_fold < 0:
        detail = "trained on every labelled row (val_fold = -1)"
        return Provenance(str(folder), "everything", split=_split(config), detail=detail)
    return Provenance(str(folder), "fold", val_fold, _split(config), f"held out fold {val_fold}")


def merged_config(
    members: Sequence[str | Path], alpha: float, base: str | Path | None
) -> dict[str, Any] | None:
    """The resolved_config.json of a model merged from `members` (and, with alpha < 1, a
    `base` that has a record of its own: its rows are in the merge too), None when none of
    them has one (the merge, like them, is taken as trained on no train row). Otherwise the
    first recorded one's config, with `[train] val_fold` the fold every fine-tuned one held
    out (-1 when they held out different folds or one trained on every row: together they saw
    every row), and `merged_from` naming each and what it trained on. A member with no record
    makes the merge's training rows unknown (`read_provenance` says so and CV refuses it);
    a base with no record is a base model."""
    parts = [(str(m), "member") for m in members]
    if alpha < 1.0 and base is not None and read_resolved_config(base) is not None:
        parts.append((str(base), "base"))
    found = [(p, role, read_resolved_config(p), read_provenance(p)) for p, role in parts]
    configs = [config for _, _, config, _ in found if config is not None]
    if not configs:
        return None
    provenances = [p for _, _, _, p in found]
    held_out = [p for p in provenances if p.trained_on == "fold"]
    everything = any(p.trained_on == "everything" for p in provenances)
    splits = {p.split for p in held_out}
    if len(splits) > 1 and not everything:
        raise ValueError(
            "the models held out folds of different splits "
            f"({'; '.join(s.describe() for s in splits)}): no row is held out by all of them, "
            "so the merged model has none to be scored on; train them on one [evaluate] split"
        )
    folds = {p.val_fold for p in held_out}
    config = json.loads(json.dumps(configs[0]))
    config["train"]["val_fold"] = folds.pop() if len(folds) == 1 and not everything else -1
    config[MERGED_FROM] = [
        {
            "path": path,
            "role": role,
            "trained_on": "unknown" if p.trained_on == "nothing" else p.trained_on,
            "val_fold": p.val_fold,
        }
        for path, role, _, p in found
    ]
    config["merge"] = {"alpha": alpha, "base": None if base is None else str(base)}
    return config
