"""Training curves and the final rank histogram as one PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_training(history: list[dict], path: str | Path) -> Path:
    """Per-epoch MAP@25 (overall, seen, unseen) beside the last epoch's gold-rank histogram."""
    figure, (curves, histogram) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = [entry["epoch"] for entry in history]
    curves.plot(epochs, [e["map@25"] for e in history], marker="o", label="all")
    for part in ("seen", "unseen"):
        if all(part in entry for entry in history):
            curves.plot(epochs, [e[part]["map@25"] for e in history], marker=".", label=part)
    curves.set(xlabel="epoch (0 = before training)", ylabel="MAP@25", title="Validation MAP@25")
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
