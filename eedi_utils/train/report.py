"""What a training run reports: the validation scores per epoch, as metrics.json and curves."""

from __future__ import annotations

import json
from pathlib import Path

from sentence_transformers import SentenceTransformer

from eedi_utils.config import KitConfig
from eedi_utils.metrics import score_report
from eedi_utils.retrieval import encode, fused_top_k
from eedi_utils.train.data import TrainingData
from eedi_utils.train.plots import plot_training

METRICS_FILE = "metrics.json"
CURVES_FILE = "training_curves.png"


def score_model(model: SentenceTransformer, data: TrainingData, config: KitConfig) -> dict:
    """MAP@k and recall@k (k = [retrieval] top_k), seen and unseen, on the validation rows."""
    queries = encode(model, data.val_queries, config.retrieval)
    documents = encode(model, data.documents, config.retrieval)
    _, positions = fused_top_k([queries], [documents], config.retrieval.top_k)
    ranked = data.document_ids[positions.numpy()]
    return score_report(ranked, data.val_gold, data.val_seen, config.retrieval.top_k)


def read_history(output_dir: Path) -> list[dict]:
    """The per-epoch reports written so far, [] when none."""
    path = output_dir / METRICS_FILE
    return json.loads(path.read_text()) if path.exists() else []


def write_history(history: list[dict], output_dir: Path, top_k: int) -> None:
    """metrics.json, and the curves PNG once there is an epoch to draw."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / METRICS_FILE).write_text(json.dumps(history, indent=2))
    if history:
        plot_training(history, output_dir / CURVES_FILE, top_k)
