"""Training curves and the final rank histogram as one PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from eedi_utils.config import NUM_PREDICTIONS  # noqa: E402
from eedi_utils.metrics import lb_key, map_key  # noqa: E402


def plot_training(history: list[dict], path: str | Path, top_k: int = NUM_PREDICTIONS) -> Path:
    """Per-epoch MAP@k (overall, seen, unseen) beside the last epoch's gold-rank histogram."""
    key = map_key(top_k)
    figure, (curves, histogram) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = [entry["epoch"] for entry in history]
    curves.plot(epochs, [e[key] for e in history], marker="o", label="all")
    for part in ("seen", "unseen"):
        if all(part in entry for entry in history):
            curves.plot(epochs, [e[part][key] for e in history], marker=".", label=part)
    if all(lb_key(top_k) in entry for entry in history):  # None (missing): a gap in the line
        estimate = [e[lb_key(top_k)] for e in history]
        if any(value is not None for value in estimate):
            estimate = [float("nan") if value is None else value for value in estimate]
            curves.plot(epochs, estimate, marker="s", linestyle="--", label="leaderboard estimate")
    curves.set(
        xlabel="epoch (0 = before training)", ylabel=f"MAP@{top_k}", title=f"Validation MAP@{top_k}"
    )
    curves.set_xticks(epochs)
    curves.legend()
    buckets = history[-1]["rank_histogram"]
    histogram.bar(list(buckets), list(buckets.values()))
    histogram.set(
        xlabel="rank of the gold misconception",
        ylabel="rows",
        title=f"Gold rank after epoch {epochs[-1]}",
    )
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
