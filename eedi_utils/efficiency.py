"""The competition's efficiency track: a CPU-only leaderboard scored on quality and run time
together, and the run-time estimate for the hidden test that the inference notebook prints
before ranking it.

The formula, from ../shared/docs/kaggle-facts.md ("Efficiency track", read from the
competition's public pages): Score = MAP@25 / (Base - maxMAP@25) + RuntimeSeconds / 32400,
lower is better, CPU-only submissions, training time not counted. Base is a baseline score below
the best, so the first term is negative. The facts give no value for Base or maxMAP@25; the
defaults here are inferred and are parameters everywhere (`BASE`, `MAX_MAP`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eedi_utils.config import NUM_PREDICTIONS, RetrievalConfig
from eedi_utils.embedder import encode, load_embedder
from eedi_utils.metrics import lb_key, map_key

RUNTIME_SCALE_SECONDS = 32400.0
"""The runtime term's denominator: 9 hours, the code competition's limit (kaggle-facts.md)."""
MAX_MAP = 0.638
"""maxMAP@25: the best private-leaderboard MAP@25 of the competition (1st place, 0.643 public /
0.638 private; ../shared/docs/competition.md). Not stated in kaggle-facts.md: inferred."""
BASE = 0.0
"""Base: not stated in kaggle-facts.md. 0.0 is inferred from the rule of thumb given there
("about 0.01 MAP@25 is worth 8-9 minutes"): with maxMAP@25 0.638, 0.01 / (0.638 - 0.0) * 32400 s
is 508 s (8.5 min); Base between -0.037 and 0.038 keeps it within 8-9 minutes."""
HIDDEN_TEST_QUESTIONS = 1000
"""The hidden test's size, about 1000 questions (../shared/docs/seed-repo.md, from the EDA notes
of evanarlian/kaggle-eedi; docs/benchmarks.md uses the same); not published by Kaggle."""
WRONG_ANSWERS_PER_QUESTION = 3
"""One submission row per distractor; every question has three (../shared/docs/competition.md)."""


def has_gpu(devices: Path = Path("/dev")) -> bool:
    """Whether this session has an NVIDIA GPU, asked without importing torch (a run with an
    export never imports it): torch's answer where it is imported already, else whether a GPU
    device node (`/dev/nvidia0`, ...: what a container is given for each GPU it gets) exists."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return bool(torch.cuda.is_available())
    return any(devices.glob("nvidia[0-9]*"))


def efficiency_score(
    map_at_25: float, runtime_seconds: float, base: float = BASE, max_map: float = MAX_MAP
) -> float:
    """The efficiency track's score, lower is better: MAP@25 / (base - max_map) +
    runtime_seconds / 32400 (kaggle-facts.md, "Efficiency track")."""
    if base >= max_map:
        raise ValueError(f"Base must lie below maxMAP@25: base {base}, max_map {max_map}")
    if runtime_seconds < 0:
        raise ValueError(f"runtime_seconds must be >= 0, got {runtime_seconds}")
    return map_at_25 / (base - max_map) + runtime_seconds / RUNTIME_SCALE_SECONDS


@dataclass(frozen=True)
class EncodingRate:
    """One retrieval model's measured start and speed: loading plus a first small encode (what
    the real run pays once), then texts per second on one batch of queries and of documents."""

    model: str
    start_seconds: float
    queries_per_second: float
    documents_per_second: float

    def seconds(self, n_queries: int, n_documents: int) -> float:
        """The model's expected time for that many queries and documents."""
        queries = n_queries / self.queries_per_second
        return self.start_seconds + queries + n_documents / self.documents_per_second


def _rate(texts: Sequence[str], model, config: RetrievalConfig) -> float:
    started = time.perf_counter()
    encode(model, texts, config)
    return len(texts) / max(time.perf_counter() - started, 1e-9)


def measure_encoding(
    paths: Sequence[str | Path | None],
    queries: Sequence[str],
    documents: Sequence[str],
    config: RetrievalConfig,
) -> list[EncodingRate]:
    """Load each model as the run will (`embedder.load_embedder`) and time one batch of
    `queries` and one of `documents` (`[retrieval] batch_size` texts each, in this process:
    `[retrieval] devices` spread over several is not modelled)."""
    rates = []
    for path in paths:
        started = time.perf_counter()
        model = load_embedder(path, config)
        # A first batch compiles or warms the kernels (an export's on every request)
        encode(model, queries[: config.batch_size], config)
        start = time.perf_counter() - started
        batch = config.batch_size
        rates.append(
            EncodingRate(
                Path(path).name if path is not None else "default model",
                start,
                _rate(queries[:batch], model, config),
                _rate(documents[:batch], model, config),
            )
        )
        del model
    return rates


@dataclass(frozen=True)
class RuntimeEstimate:
    """A run's expected time: what has run so far (set-up, imports, data) plus each model's
    encoding of `questions` questions' rows and every document; the LLM stage is not counted."""

    elapsed_seconds: float
    rates: tuple[EncodingRate, ...]
    questions: int
    documents: int

    @property
    def rows(self) -> int:
        return self.questions * WRONG_ANSWERS_PER_QUESTION

    @property
    def seconds(self) -> float:
        encoding = sum(rate.seconds(self.rows, self.documents) for rate in self.rates)
        return self.elapsed_seconds + encoding

    def __str__(self) -> str:
        models = "; ".join(
            f"{r.model}: start {r.start_seconds:.1f} s, {r.queries_per_second:.0f} queries/s, "
            f"{r.documents_per_second:.0f} misconceptions/s"
            for r in self.rates
        )
        return (
            f"{self.seconds:.0f} s ({self.seconds / 60:.1f} min) for {self.questions} questions "
            f"({self.rows} rows) and {self.documents} misconceptions: {self.elapsed_seconds:.0f} s "
            f"so far + encoding ({models})"
        )


def summary(
    report: Mapping[str, Any] | None,
    run_seconds: float,
    rerun_seconds: float,
    hidden: RuntimeEstimate | None,
    cpu_only: bool,
    k: int = NUM_PREDICTIONS,
    base: float = BASE,
    max_map: float = MAX_MAP,
) -> str:
    """The lines printed at the end of a run: its measured time, the scoring rerun's share of it
    (`rerun_seconds`: without the commit run's own steps), and beside the commit run's CV
    (`report`, as `metrics.score_report` writes it for top `k`) the efficiency score, from
    map@k_lb (map@k when a side has no rows) and the hidden-test estimate (else the rerun's
    share of this run)."""
    rerun = f"{rerun_seconds:.1f} s of it would run in the scoring rerun"
    lines = [f"run time: {run_seconds:.1f} s from the first cell ({rerun})"]
    if hidden is not None:
        lines.append(f"hidden-test runtime estimate: {hidden}")
    if report is None:
        lines.append("efficiency score: no CV on this run, so no MAP@25 to put in it")
        return "\n".join(lines)
    key, lb = map_key(k), lb_key(k)
    lb_figure = "none (a side has no rows)" if report[lb] is None else f"{report[lb]:.4f}"
    lines.append(
        f"commit-run CV: {key} {report[key]:.4f}  seen {report['seen'][key]:.4f}  "
        f"unseen {report['unseen'][key]:.4f}  {lb} {lb_figure}"
    )
    if not cpu_only:
        lines.append("efficiency track: not eligible, this session has a GPU (CPU-only track)")
        return "\n".join(lines)
    quality, named = (report[key], key) if report[lb] is None else (report[lb], lb)
    if hidden is not None:
        runtime, which = hidden.seconds, "hidden-test estimate"
    else:
        runtime, which = rerun_seconds, "this run's scoring-rerun share"
    score = efficiency_score(quality, runtime, base, max_map)
    lines.append(
        f"efficiency score estimate: {score:.4f} (lower is better) = {named} {quality:.4f} / "
        f"({base} - {max_map}) + {runtime:.0f} s ({which}) / {RUNTIME_SCALE_SECONDS:.0f}"
    )
    return "\n".join(lines)
