"""The levers on a leaderboard-like CV, with no figure tuned on the rows it reports: for each
ConstructId-grouped fold asked, `eedi train` with that fold held out, then the unseen prior
and WiSE-FT (weight-space interpolation toward the base) chosen by cross-fitting (each half
of the fold's constructs ranked with the choice that was best on the other half). Every row
shows plain MAP@25, seen, unseen, the unseen share and the leaderboard estimate
map@25_lb = 0.25 seen + 0.75 unseen, per fold and as the mean over folds (missing, null in
the JSON, when a fold has no seen or no unseen rows).

    python benchmarks/cv.py --variant default                  # folds 0 and 1, the defaults
    python benchmarks/cv.py --variant len256 --set retrieval.max_seq_length=256
    python benchmarks/cv.py --variant e3 --folds 0 --set train.epochs=3

Each fold trains afresh into --output-dir/VARIANT/fold-K (an earlier run there is cleared),
appends its rows to --results (JSON lines) and redraws --png from all rows there.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from eedi_utils.config import KitConfig, load_config, parse_toml_value  # noqa: E402
from eedi_utils.cpu import cpu_name, cpu_runs_bf16_fast  # noqa: E402
from eedi_utils.cross_fit import cross_fit, edge_note  # noqa: E402
from eedi_utils.data import CompetitionData  # noqa: E402
from eedi_utils.embedder import Embedder, load_embedder  # noqa: E402
from eedi_utils.merge import merge_models  # noqa: E402
from eedi_utils.metrics import format_score, lb_key, map_key  # noqa: E402
from eedi_utils.prior import UnseenPrior  # noqa: E402
from eedi_utils.train.retriever.data import TrainingData, prepare_data  # noqa: E402
from eedi_utils.train.retriever.model import base_model_path  # noqa: E402
from eedi_utils.train.retriever.report import (  # noqa: E402
    rank_embeddings,
    score_model,
    table_row,
    validation_embeddings,
)
from eedi_utils.train.retriever.run import RetrieverTraining  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def cpu_kind() -> str:
    """The CPU model and whether it runs bf16 natively (it decides dtype = "auto")."""
    name = cpu_name()
    if name == "unknown CPU":  # no /proc/cpuinfo
        name = platform.processor() or name
    return f"{name}, {'native bf16' if cpu_runs_bf16_fast() else 'no native bf16'}"


def overrides(pairs: list[str]) -> dict[str, dict]:
    """`section.key=value` pairs (values in TOML syntax) as config overrides."""
    result: dict[str, dict] = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        section, _, key = name.partition(".")
        try:
            value = parse_toml_value(text)
        except ValueError:
            value = text
        result.setdefault(section, {})[key] = value
    return result


def cross_fitted_row(
    name: str,
    candidates: dict[tuple[float, float], np.ndarray],
    data: TrainingData,
    config: KitConfig,
    alphas: list[float],
) -> dict:
    """The row of rankings chosen by cross-fitting among `candidates` ((WiSE-FT alpha, prior
    strength): ranking of the validation rows), with a note for each pick at the edge of its
    grid (alpha 1, no interpolation, is the natural end of its own)."""
    labels, rankings = list(candidates), list(candidates.values())
    k, share = config.retrieval.top_k, config.evaluate.lb_unseen_share
    fitted = cross_fit(
        rankings, data.val_gold, data.val_seen, data.val_groups, k, share, config.train.seed
    )
    if fitted is None:  # a half with no seen or no unseen rows: nothing to choose by
        missing = {"seen": None, "unseen": None, map_key(): None, lb_key(): None}
        return {"row": name, "picks": "no estimate to choose by", **missing}
    picks = [labels[i] for i in fitted.picks]
    notes = []
    for alpha, strength in picks:
        notes.append(edge_note(config.train.unseen_prior_grid, strength, f"{name}: prior"))
        if alpha < 1.0:
            notes.append(edge_note(alphas, alpha, f"{name}: WiSE-FT alpha"))
    notes = sorted({n for n in notes if n})
    for note in notes:
        logging.warning(note)
    return table_row({"row": name, "picks": picks, "notes": notes}, fitted.report, config)


def prior_rankings(
    embeddings: tuple[np.ndarray, np.ndarray], data: TrainingData, config: KitConfig, alpha: float
) -> dict[tuple[float, float], np.ndarray]:
    """The validation rows ranked by these (query, document) embeddings of the model of WiSE-FT
    weight `alpha` with each strength of `[train] unseen_prior_grid`, keyed (alpha, strength)."""
    labelled, ids = data.labelled_ids(), data.document_ids
    return {
        (alpha, s): rank_embeddings(*embeddings, data, config, UnseenPrior(s, labelled).bonus(ids))
        for s in config.train.unseen_prior_grid
    }


def fine_tuned(
    variant: str, fold: int, config: KitConfig, data: CompetitionData, args: argparse.Namespace
) -> tuple[Embedder, Path, TrainingData, dict, float | None]:
    """The model of `fold` (trained here with it held out, or `--trained`'s folder) as
    `eedi predict` loads it, its folder, its rows, its report and the minutes of training."""
    config.train.val_fold = fold
    if args.trained is not None:
        rows = prepare_data(data, config)
        model = load_embedder(args.trained, config.retrieval)
        return model, args.trained, rows, score_model(model, rows, config), None
    out = args.output_dir / variant / f"fold-{fold}"
    started = time.perf_counter()
    training = RetrieverTraining(data, out, config)
    model = training.run(overwrite=True)
    minutes = (time.perf_counter() - started) / 60
    return model, out, training.data, training.history[-1], minutes


def fold_rows(
    variant: str, fold: int, config: KitConfig, data: CompetitionData, args: argparse.Namespace
) -> list[dict]:
    """Train with `fold` held out; the rows of the zero-shot and fine-tuned model and of the
    cross-fitted prior and WiSE-FT choices."""
    model, out, rows_of, tuned_report, minutes = fine_tuned(variant, fold, config, data, args)
    # the base loaded as the fine-tuned model is (a sentence-transformers folder: a plain
    # transformers one would get ST's default pooling here, not `[train] pooling`, nor the
    # pad token `build_model` gives a decoder without one)
    base = base_model_path(config.train, config.kaggle.model_dataset)
    zero_shot = load_embedder(base, config.retrieval)
    zero = score_model(zero_shot, rows_of, config)
    del zero_shot
    tuned = prior_rankings(validation_embeddings(model, rows_of, config), rows_of, config, 1.0)
    rows = [
        table_row({"row": "zero-shot"}, zero, config),
        table_row({"row": "fine-tuned, no prior"}, tuned_report, config),
        cross_fitted_row("+ unseen prior, cross-fitted", tuned, rows_of, config, [1.0]),
    ]
    every = dict(tuned)
    alphas = parse_toml_value(args.alphas)
    for alpha in alphas:
        target = args.output_dir / variant / f"fold-{fold}-wise{alpha}"
        merged = merge_models([str(out)], target, str(base), alpha)
        wise = load_embedder(merged, config.retrieval)
        every |= prior_rankings(
            validation_embeddings(wise, rows_of, config), rows_of, config, alpha
        )
    name = "+ WiSE-FT and prior, cross-fitted"
    rows.append(cross_fitted_row(name, every, rows_of, config, [*alphas, 1.0]))
    command = f"python benchmarks/cv.py --variant {variant} --folds {fold}" + (
        f" --set {' '.join(args.set)}" if args.set else ""
    )
    if args.trained is not None:
        command += f" --trained {args.trained}"
    command += f" --alphas '{args.alphas}'"  # it decides the WiSE-FT row
    extra = {"variant": variant, "fold": fold, "command": command, "cpu": cpu_kind()}
    extra["wall_minutes"] = None if minutes is None else round(minutes, 1)
    return [{**r, "unseen_share": tuned_report["unseen_share"], **extra} for r in rows]


def mean_rows(rows: list[dict], variant: str, folds: list[int]) -> list[dict]:
    """Per row name, the mean of each figure over the folds (missing if a fold misses it)."""
    means = []
    for name in dict.fromkeys(r["row"] for r in rows):
        same = [r for r in rows if r["row"] == name]
        mean = {"row": name, "variant": variant, "fold": f"mean of {folds}"}
        for field in (map_key(), "seen", "unseen", "unseen_share", lb_key(), "wall_minutes"):
            values = [r[field] for r in same]
            mean[field] = None if None in values else round(float(np.mean(values)), 4)
        means.append(mean)
    return means


def print_rows(rows: list[dict]) -> None:
    """The rows as a table: fold, row, MAP@25, seen, unseen, unseen share, map@25_lb, wall."""
    print(f"{'fold':>10} {'row':36} {'map@25':>7} {'seen':>6} {'unseen':>6} {'u':>5} {'lb':>7}")
    for r in rows:
        print(
            f"{str(r['fold']):>10} {r['row']:36} {format_score(r[map_key()], 7)} "
            f"{format_score(r['seen'])} {format_score(r['unseen'])} "
            f"{format_score(r['unseen_share'], 5, 2)} {format_score(r[lb_key()], 7)} "
            f"{'' if r['wall_minutes'] is None else format(r['wall_minutes'], '5.1f') + ' min'}"
        )


def plot(rows: list[dict], path: Path) -> None:
    shown = [r for r in rows if str(r.get("fold", "")).startswith("mean")] or rows
    figure, axis = plt.subplots(figsize=(10, 0.45 * len(shown) + 1.5))
    labels = [f"{r.get('variant', '')}: {r['row']}" for r in shown]
    y = range(len(shown))
    for offset, field in ((-0.25, "seen"), (0.0, "unseen"), (0.25, lb_key())):
        widths = [float("nan") if r[field] is None else r[field] for r in shown]
        axis.barh([i + offset for i in y], widths, height=0.25, label=field)
    axis.set_yticks(list(y), labels)
    axis.invert_yaxis()
    axis.set_xlabel("MAP@25, mean over ConstructId-grouped folds (choices cross-fitted)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="default", help="name of this run's rows")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1], help="folds to hold out")
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "eedi")
    parser.add_argument("--output-dir", type=Path, default=Path("/tmp/eedi-cv"))
    parser.add_argument("--alphas", default="[0.5, 0.7, 0.85]", help="WiSE-FT weights to try")
    parser.add_argument(
        "--trained",
        type=Path,
        help="score this model folder (or trainer checkpoint) of the one fold given instead "
        "of training; its training minutes are not known",
    )
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "cv-results.jsonl")
    parser.add_argument("--png", type=Path, default=REPO / "benchmarks" / "cv-results.png")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    if args.trained is not None and len(args.folds) != 1:
        parser.error("--trained scores one model: give the one fold it held out (--folds K)")
    if "val_fold" in overrides(args.set).get("train", {}):
        parser.error("the folds held out are --folds K [K ...], not --set train.val_fold")
    data = CompetitionData(args.data_dir)
    rows = []
    for fold in args.folds:
        config = load_config(None, overrides(args.set))
        config.retrieval.show_progress = False
        config.retrieval.unseen_prior = None
        rows += fold_rows(args.variant, fold, config, data, args)
    rows += mean_rows(rows, args.variant, args.folds)
    with args.results.open("a") as results:
        for entry in rows:
            results.write(json.dumps(entry) + "\n")
    plot([json.loads(line) for line in args.results.read_text().splitlines()], args.png)
    print(f"CPU: {cpu_kind()}")
    print_rows(rows)


if __name__ == "__main__":
    main()
