"""The levers on a leaderboard-like CV: `eedi train` on the real train set, validated on a
ConstructId-grouped fold, then the unseen prior and weight-space interpolation (WiSE-FT)
tuned on that fold. Every row shows plain MAP@25, seen, unseen, the unseen share and the
leaderboard estimate map@25_lb = 0.25 seen + 0.75 unseen, so no trade between seen and
unseen rows hides in one average (missing, null in the JSON, when the fold has no seen or no
unseen rows).

    python benchmarks/cv.py --variant default                 # the kit's defaults
    python benchmarks/cv.py --variant scale100 --set train.scale=100
    python benchmarks/cv.py --variant no-negatives --set train.n_negatives=0

Each run trains afresh into --output-dir/VARIANT (an earlier run of the variant there is
cleared), appends its rows to --results (JSON lines) and redraws --png from all rows there.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from eedi_utils.config import load_config, parse_toml_value  # noqa: E402
from eedi_utils.data import CompetitionData  # noqa: E402
from eedi_utils.merge import merge_models  # noqa: E402
from eedi_utils.metrics import format_score, lb_key, map_key  # noqa: E402
from eedi_utils.prior import read_prior  # noqa: E402
from eedi_utils.retrieval import default_model_path, load_embedder  # noqa: E402
from eedi_utils.train.report import (  # noqa: E402
    score_embeddings,
    tune_unseen_prior,
    validation_embeddings,
)
from eedi_utils.train.run import RetrieverTraining  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def row(name: str, report: dict, command: str, minutes: float, **extra) -> dict:
    key = map_key()
    return {
        "row": name,
        key: report[key],
        "seen": report["seen"][key] if isinstance(report["seen"], dict) else report["seen"],
        "unseen": report["unseen"][key] if isinstance(report["unseen"], dict) else report["unseen"],
        "unseen_share": report.get("unseen_share"),
        lb_key(): report[lb_key()],
        "wall_minutes": round(minutes, 1),
        "command": command,
        **extra,
    }


def stored_row(table: list[dict], strength: float) -> dict:
    """The tuning table's row of the strength stored (the best by map@25_lb; the first row,
    0 in the default grid, where map@25_lb is missing and nothing was tuned)."""
    return next((r for r in table if r["unseen_prior"] == strength), table[0])


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


def plot(rows: list[dict], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.5))
    labels = [r["row"] for r in rows]
    y = range(len(rows))
    for offset, field in ((-0.25, "seen"), (0.0, "unseen"), (0.25, lb_key())):
        widths = [float("nan") if r[field] is None else r[field] for r in rows]  # missing: no bar
        axis.barh([i + offset for i in y], widths, height=0.25, label=field)
    axis.set_yticks(list(y), labels)
    axis.invert_yaxis()
    axis.set_xlabel("MAP@25 on a ConstructId-grouped validation fold")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="default", help="name of this run's rows")
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "eedi")
    parser.add_argument("--output-dir", type=Path, default=Path("/tmp/eedi-cv"))
    parser.add_argument("--alphas", default="[0.5, 0.7, 0.85]", help="WiSE-FT weights to try")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "cv-results.jsonl")
    parser.add_argument("--png", type=Path, default=REPO / "benchmarks" / "cv-results.png")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    config = load_config(None, overrides(args.set))
    config.retrieval.show_progress = False
    config.retrieval.unseen_prior = None
    command = f"python benchmarks/cv.py --variant {args.variant}" + (
        f" --set {' '.join(args.set)}" if args.set else ""
    )
    data = CompetitionData(args.data_dir)
    out = args.output_dir / args.variant
    started = time.perf_counter()
    training = RetrieverTraining(data, out, config)
    model = training.run(overwrite=True)  # a variant's earlier run there is cleared
    minutes = (time.perf_counter() - started) / 60
    rows = [
        row(f"{args.variant}: zero-shot", training.history[0], command, 0.0),
        row(f"{args.variant}: fine-tuned", training.history[-1], command, minutes),
    ]
    best_prior = stored_row(training.prior_table, read_prior(out).strength)
    rows.append(
        row(
            f"{args.variant}: + unseen prior {best_prior['unseen_prior']}",
            {**best_prior, "unseen_share": training.history[-1]["unseen_share"]},
            command,
            minutes,
        )
    )
    base = str(config.train.base_model or default_model_path())
    for alpha in parse_toml_value(args.alphas):
        merged = merge_models([str(out)], out.parent / f"{args.variant}-wise{alpha}", base, alpha)
        wise = load_embedder(merged, config.retrieval)
        embeddings = validation_embeddings(wise, training.data, config)
        report = score_embeddings(*embeddings, training.data, config)
        prior, table = tune_unseen_prior(*embeddings, training.data, config)
        chosen = stored_row(table, prior.strength)
        rows.append(row(f"{args.variant}: WiSE-FT {alpha}", report, command, minutes))
        rows.append(
            row(
                f"{args.variant}: WiSE-FT {alpha} + unseen prior {chosen['unseen_prior']}",
                {**chosen, "unseen_share": report["unseen_share"]},
                command,
                minutes,
            )
        )
    del model
    with args.results.open("a") as results:
        for entry in rows:
            results.write(json.dumps(entry) + "\n")
    every = [json.loads(line) for line in args.results.read_text().splitlines()]
    plot(every, args.png)
    header = f"{'row':48} {'map@25':>7} {'seen':>6} {'unseen':>6} {'u':>5} {'lb':>6} {'min':>5}"
    print(header)
    for entry in rows:
        print(
            f"{entry['row']:48} {entry[map_key()]:7.4f} {entry['seen']:6.4f} "
            f"{entry['unseen']:6.4f} {entry['unseen_share']:5.2f} {format_score(entry[lb_key()])} "
            f"{entry['wall_minutes']:5.1f}"
        )


if __name__ == "__main__":
    main()
