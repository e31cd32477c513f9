"""`eedi`: the command line over the package (predict a submission, evaluate retrieval)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from eedi_utils import pipeline
from eedi_utils.config import ConfigError, KitConfig, load_config
from eedi_utils.data import CompetitionData, DataError
from eedi_utils.inputs import DATA_DIR_VARIABLE, output_dir, resolve_data_dir
from eedi_utils.submission import SubmissionError

DATA_HELP = (
    f"folder holding the competition CSVs (Kaggle layout); default: ${DATA_DIR_VARIABLE}, "
    "then the Kaggle competition input, then the bundled sample"
)
MODEL_HELP = (
    "sentence-transformers model folder; repeat to fuse several; "
    "default: [retrieval] models of the config, else the bundled all-MiniLM-L6-v2"
)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help=DATA_HELP)
    parser.add_argument("--model", action="append", dest="models", metavar="PATH", help=MODEL_HELP)
    parser.add_argument("--config", metavar="FILE", help="TOML file with a section per stage")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or log lines")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eedi",
        description="Rank the misconceptions behind each wrong answer of the Eedi maths "
        "questions (Kaggle: Eedi - Mining Misconceptions in Mathematics).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = commands.add_parser(
        "predict",
        help="write submission.csv for DATA/test.csv",
        description="Rank misconceptions for every wrong answer of test.csv and write a "
        "validated submission.csv.",
    )
    _common(predict)
    predict.add_argument(
        "--out",
        metavar="FILE",
        help="default: ./submission.csv (/kaggle/working/submission.csv on Kaggle)",
    )
    predict.add_argument("--top-k", type=int, help="ids per row (default 25)")

    evaluate = commands.add_parser(
        "evaluate",
        help="score retrieval on train.csv by question-grouped CV; prints JSON",
        description="Score retrieval on the labelled rows of train.csv, split into folds grouped "
        "by QuestionId; prints MAP@25, recall@25 and n, overall and for rows whose misconception "
        "is seen vs unseen in the fold's training side.",
    )
    _common(evaluate)
    evaluate.add_argument("--folds", type=int, help="number of folds (default 5)")
    evaluate.add_argument("--fold", type=int, help="score only this fold (default: every fold)")
    evaluate.add_argument("--max-questions", type=int, help="score a seeded sample of questions")

    train = commands.add_parser(
        "train",
        help="fine-tune a retriever on train.csv with re-mined hard negatives",
        description="Fine-tune a retriever on DATA/train.csv (the [evaluate] fold val_fold held "
        "out), re-mining hard negatives from the model being trained, and save a model folder "
        "that `eedi predict --model OUT` loads offline, with metrics.json and the resolved "
        "config. Runs on several processes under `accelerate launch` or `torchrun`.",
    )
    train.add_argument("--data-dir", help=DATA_HELP)
    train.add_argument("--output-dir", required=True, metavar="OUT", help="model folder to write")
    train.add_argument("--config", metavar="FILE", help="TOML file with a section per stage")
    train.add_argument("--base-model", metavar="PATH", help="model folder to start from")
    train.add_argument("--epochs", type=int, help="passes over the training rows")
    train.add_argument("--resume", action="store_true", help="go on from OUT's last checkpoint")
    train.add_argument("--quiet", action="store_true", help="no progress bars or log lines")

    for name, summary, description in (
        (
            "paraphrase",
            "paraphrase questions and misconceptions with an LLM into a data folder",
            "Ask an OpenAI-compatible endpoint for N paraphrases of every question text and "
            "misconception name; write OUT/train.csv and OUT/misconception_mapping.csv with the "
            "originals first and a Generated column, ready for `eedi train --data-dir OUT`.",
        ),
        (
            "synthesize",
            "write new judged questions for misconceptions without training rows",
            "Few-shot prompt new questions for every misconception no training row is labelled "
            "with, keep those an LLM judge accepts, and write OUT/train.csv (input rows first, "
            "new rows flagged Generated).",
        ),
    ):
        command = commands.add_parser(name, help=summary, description=description)
        command.add_argument("--data-dir", help=DATA_HELP)
        command.add_argument("--out", required=True, metavar="OUT", help="data folder to write")
        command.add_argument("--config", metavar="FILE", help="TOML file with a section per stage")
        command.add_argument("--n", type=int, help="paraphrases per text (default 4)")
        command.add_argument("--model", help="model name at the endpoint (default gpt-4o-mini)")
        command.add_argument("--base-url", help="OpenAI-compatible server; default: OpenAI")
        command.add_argument("--max-cost", type=float, metavar="USD", help="stop at this cost")
        command.add_argument("--concurrency", type=int, help="calls in flight (default 8)")
        command.add_argument(
            "--dry-run", action="store_true", help="print the calls, tokens and cost expected"
        )
        command.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    return parser


def _config(args: argparse.Namespace) -> KitConfig:
    config = load_config(args.config)
    if args.quiet:
        config.retrieval.show_progress = False
    if getattr(args, "top_k", None) is not None:
        config.retrieval.top_k = args.top_k
    if getattr(args, "folds", None) is not None:
        config.evaluate.folds = args.folds
    if getattr(args, "base_model", None):
        config.train.base_model = args.base_model
    if getattr(args, "epochs", None) is not None:
        config.train.epochs = args.epochs
    if args.command in ("paraphrase", "synthesize"):
        for option in ("n", "model", "base_url", "max_cost", "concurrency"):
            if getattr(args, option) is not None:
                setattr(config.generate, option, getattr(args, option))
    return config


def run(args: argparse.Namespace) -> int:
    config = _config(args)
    source = resolve_data_dir(args.data_dir)
    print(f"data: {source}", file=sys.stderr)
    data = CompetitionData(source.path)
    if args.command == "predict":
        out = args.out or output_dir() / "submission.csv"
        path = pipeline.predict(data, out, args.models, config)
        print(f"wrote {path}", file=sys.stderr)
    elif args.command == "train":
        from eedi_utils.train.run import RetrieverTraining

        trainer = RetrieverTraining(data, args.output_dir, config)
        trainer.run(resume=args.resume)
        if trainer.history:
            print(json.dumps(trainer.history[-1], indent=2))
        print(f"model saved in {args.output_dir}", file=sys.stderr)
    elif args.command in ("paraphrase", "synthesize"):
        return generate(args, config, data)
    else:
        report = pipeline.evaluate(data, args.models, config, args.fold, args.max_questions)
        print(json.dumps({"data_dir": str(source.path), **report}, indent=2))
    return 0


def generate(args: argparse.Namespace, config: KitConfig, data: CompetitionData) -> int:
    if args.command == "paraphrase":
        from eedi_utils.generate.paraphrase import paraphrase as job
    else:
        from eedi_utils.generate.synthesize import synthesize as job
    result = job(data, Path(args.out), config.generate, args.dry_run, not args.quiet)
    if args.dry_run:
        print(f"dry run, {config.generate.model}: {result}")
        return 0
    print(f"{args.command}: {result}")
    for failure in result.failures:
        print(f"  failed: {failure}", file=sys.stderr)
    print(f"wrote {args.out} (rerun the same command to retry what failed or was skipped)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per LLM call otherwise
    try:
        return run(args)
    except (DataError, ConfigError, SubmissionError, FileNotFoundError, ValueError) as err:
        print(f"eedi: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
