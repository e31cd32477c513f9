"""`eedi`: the command line over the package. Every setting a command reads from the config is
also one of its flags, derived from the config dataclasses (`config.command_settings`), with
one name in every command: `[section] key` is `--section-key` (underscores as hyphens), and a few
everyday settings also have a short alias (`EVERYDAY_FLAGS`). The names of the previous
release, 0.1 (`--key` where the key was unique in the command), still work in this one with a
deprecation line (`deprecated_flags.PREVIOUS_FLAGS`, `setting_action`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eedi_utils import __version__, pipeline
from eedi_utils.config import (
    ConfigError,
    KitConfig,
    command_settings,
    load_config,
    parse_toml_value,
)
from eedi_utils.data import CompetitionData, DataError
from eedi_utils.deprecated_flags import PREVIOUS_FLAGS
from eedi_utils.extras import MissingExtra
from eedi_utils.inputs import DATA_DIR_VARIABLE, output_dir, resolve_data_dir
from eedi_utils.metrics import lb_key, map_key
from eedi_utils.prior import read_prior
from eedi_utils.submission import SubmissionError

DATA_HELP = (
    f"folder holding the competition CSVs (Kaggle layout); default: ${DATA_DIR_VARIABLE}, "
    "then the Kaggle competition input, then the bundled sample"
)
NAMED_FLAGS = {("retrieval", "models"): "--model", ("rerank", "enabled"): "--rerank"}
"""Settings whose flag is not derived from the key: `--model PATH` once per retrieval model
folder, and `--rerank/--no-rerank` for [rerank] enabled."""
EVERYDAY_FLAGS: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("evaluate", "folds"): ("--folds", ("evaluate", "train", "train-reranker")),
    ("train", "val_fold"): ("--val-fold", ("train",)),
    ("train", "epochs"): ("--epochs", ("train",)),
    ("train", "base_model"): ("--base-model", ("train",)),
    ("retrieval", "max_seq_length"): ("--max-seq-length", ("predict", "evaluate", "train")),
    ("retrieval", "unseen_prior"): ("--unseen-prior", ("predict", "evaluate", "train")),
    ("retrieval", "top_k"): ("--top-k", ("predict", "evaluate")),
    ("export", "format"): ("--format", ("export",)),
    ("export", "quantize"): ("--quantize", ("export",)),
}
"""Short aliases of everyday settings, and the commands offering each: a fixed table, so a key
added to another section never renames or removes one."""
DEPRECATED = f"the flag name of 0.1, deprecated in {__version__} and gone in the next release"
COMMANDS = {
    "predict": (
        "write submission.csv for DATA/test.csv",
        "Rank misconceptions for every wrong answer of test.csv and write a validated "
        "submission.csv.",
    ),
    "evaluate": (
        "score retrieval on train.csv by grouped CV; prints JSON",
        "Score retrieval on the labelled rows of train.csv, split into folds grouped by "
        "[evaluate] group_by (ConstructId), never on rows a fine-tuned --model trained on: such "
        "a model scores only the fold it held out (from its resolved_config.json); prints "
        "MAP@25, recall@25 and n, overall and for rows whose misconception "
        "is seen vs unseen in the fold's training side.",
    ),
    "train": (
        "fine-tune a retriever on train.csv with re-mined hard negatives",
        "Fine-tune a retriever on DATA/train.csv (the [evaluate] fold val_fold held out), "
        "re-mining hard negatives from the model being trained, and save a model folder that "
        "`eedi predict --model OUT` loads offline, with metrics.json and the resolved config. "
        "Runs on several processes under `accelerate launch` or `torchrun`.",
    ),
    "merge": (
        "average fine-tuned models and/or interpolate toward the base (WiSE-FT)",
        "Write a plain model folder whose weights are (1 - alpha) * BASE + alpha * the mean of "
        "the --model folders (same architecture): several seeds or folds averaged, and/or a "
        "fine-tuned model moved back toward its base. No inference cost; tune alpha on the CV.",
    ),
    "export": (
        "export a retrieval model for CPU runtimes, optionally in int8 (extra [export])",
        "Write MODEL as a folder for a CPU runtime (OpenVINO or ONNX Runtime) that `eedi predict "
        "--model OUT`, evaluate and the inference notebook load like any model folder; with "
        "--quantize int8, calibrated on the competition's texts. The export is then scored "
        "against MODEL on the fold MODEL held out (seen, unseen, map@25_lb) and fails past "
        "[export] tolerance.",
    ),
    "train-reranker": (
        "fine-tune an LLM reranker on out-of-fold retrieval candidates",
        "Rank every labelled train row with a retriever that did not train on it ([train_reranker] "
        "retrievers, or one trained here per fold), fine-tune a causal LM with LoRA to pick the "
        "gold among them (listwise letters or pointwise Yes/No, scored as [rerank] scores), "
        "merge the adapter and save OUT/model for `[rerank] model`; reports the held-out fold "
        "before and after. Runs on several GPUs under `accelerate launch`.",
    ),
    "paraphrase": (
        "paraphrase questions and misconceptions with an LLM into a data folder (extra [llm])",
        "Ask an OpenAI-compatible endpoint for N paraphrases of every question text and "
        "misconception name; write OUT/train.csv and OUT/misconception_mapping.csv with the "
        "originals first and a Generated column, ready for `eedi train --data-dir OUT`.",
    ),
    "synthesize": (
        "write new judged questions for misconceptions without training rows (extra [llm])",
        "Few-shot prompt new questions for every misconception no training row is labelled "
        "with, keep those an LLM judge accepts, and write OUT/train.csv (input rows first, new "
        "rows flagged Generated).",
    ),
}


def setting_flag(section: str, key: str) -> str:
    """The one flag of `[section] key`, the same in every command that reads it."""
    if (section, key) in NAMED_FLAGS:
        return NAMED_FLAGS[(section, key)]
    return f"--{section}-{key}".replace("_", "-")


def flag_names(command: str) -> dict[tuple[str, str], list[str]]:
    """The flags of each (section, key) the command reads: the setting's flag, then its
    everyday alias where the command offers one."""
    names = {}
    for section, setting in command_settings(command):
        flags = [setting_flag(section, setting.name)]
        alias, commands = EVERYDAY_FLAGS.get((section, setting.name), ("", ()))
        if command in commands:
            flags.append(alias)
        names[(section, setting.name)] = flags
    return names


def previous_flag_names(command: str) -> dict[str, tuple[str, str]]:
    """The 0.1 flags of `command` that 0.2 renamed, and the setting each means
    (`deprecated_flags`, frozen: no setting added later gets one)."""
    return PREVIOUS_FLAGS.get(command, {})


def _value_parser(hint: Any):
    """argparse `type` for a setting: numbers and text as they are, lists and tables as TOML."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if typing.get_origin(hint) is typing.Literal:  # the loader checks the choice
        hint = type(typing.get_args(hint)[0])
    if hint in (int, float, str):
        return hint

    def toml(text: str) -> Any:
        try:
            return parse_toml_value(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from err

    return toml


def add_setting_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """One flag per setting the command reads (plus its alias, and hidden, its previous
    release's name); only the flags given reach the config."""
    hints = {
        name: typing.get_type_hints(cls) for name, cls in typing.get_type_hints(KitConfig).items()
    }
    names = flag_names(command)
    previous: dict[tuple[str, str], list[str]] = {}
    for flag, setting in previous_flag_names(command).items():
        previous.setdefault(setting, []).append(flag)
    for section, setting in command_settings(command):
        hint = hints[section][setting.name]
        help_text = f"{setting.metadata.get('help', '')} [{section}] {setting.name}".strip()
        options: dict[str, Any] = {
            "dest": f"{section}.{setting.name}",
            "default": argparse.SUPPRESS,
            "help": help_text.replace("%", "%%"),  # argparse formats help with %
        }
        action: type[argparse.Action] = argparse._StoreAction
        if (section, setting.name) == ("retrieval", "models"):
            options["metavar"], action = "PATH", argparse._AppendAction
        elif hint is bool:
            action = argparse.BooleanOptionalAction
        else:
            options["type"] = _value_parser(hint)
            options["metavar"] = setting.name.upper()
        flags = names[(section, setting.name)]
        parser.add_argument(*flags, action=setting_action(action, section, setting.name), **options)
        for old in previous.get((section, setting.name), []):
            hidden = {**options, "help": argparse.SUPPRESS}
            old_action = setting_action(action, section, setting.name, previous=True)
            parser.add_argument(old, action=old_action, **hidden)


GIVEN_AS = "_flags_given"
"""Namespace attribute: the flag each given setting was typed as, for error messages."""


def setting_action(
    action: type[argparse.Action], section: str, key: str, previous: bool = False
) -> type[argparse.Action]:
    """`action` that records the flag a setting was given as; for a `previous` (0.1) name it
    first prints which flag replaces it (while parsing, so a `--help` after it shows it too)."""

    class Setting(action):  # type: ignore[valid-type,misc]
        def __call__(self, parser, namespace, values, option_string=None):
            if previous:
                new = setting_flag(section, key)
                if option_string and option_string.startswith("--no-"):
                    new = f"--no-{new[2:]}"
                print(
                    f"eedi: warning: {option_string} is {DEPRECATED}: use {new} "
                    f"([{section}] {key})",
                    file=sys.stderr,
                )
            given = dict(getattr(namespace, GIVEN_AS, {}))
            given[(section, key)] = option_string
            setattr(namespace, GIVEN_AS, given)
            super().__call__(parser, namespace, values, option_string)

    return Setting


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eedi",
        allow_abbrev=False,
        description="Rank the misconceptions behind each wrong answer of the Eedi maths "
        "questions (Kaggle: Eedi - Mining Misconceptions in Mathematics). Every setting of "
        "the TOML config that a command reads is also one of its flags.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, description) in COMMANDS.items():
        command = commands.add_parser(
            name, help=summary, description=description, allow_abbrev=False
        )
        command.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
        if name == "merge":
            command.add_argument(
                "--model",
                action="append",
                required=True,
                metavar="PATH",
                dest="merge_models",
                help="a fine-tuned model folder; repeat to average several",
            )
            command.add_argument("--base", metavar="PATH", help="the model they started from")
            command.add_argument(
                "--alpha",
                type=float,
                default=1.0,
                help="weight of the fine-tuned average (1: no base; 0: the base)",
            )
            command.add_argument("--out", required=True, metavar="OUT", help="folder to write")
            continue
        command.add_argument("--data-dir", help=DATA_HELP)
        command.add_argument("--config", metavar="FILE", help="TOML file with a section per stage")
        if name == "predict":
            command.add_argument(
                "--out",
                metavar="FILE",
                help="default: ./submission.csv (/kaggle/working/submission.csv on Kaggle)",
            )
        elif name == "evaluate":
            command.add_argument(
                "--fold",
                type=int,
                help="score only this fold (default: every fold; a fine-tuned model: the one "
                "it held out)",
            )
            command.add_argument(
                "--max-questions", type=int, help="score a seeded sample of questions"
            )
        elif name == "export":
            command.add_argument(
                "model", nargs="?", help="model folder to export (default: the bundled model)"
            )
            command.add_argument("--to", required=True, metavar="OUT", help="folder to write")
            command.add_argument(
                "--overwrite", action="store_true", help="replace an earlier export in OUT"
            )
        elif name == "train-reranker":
            command.add_argument(
                "--output-dir",
                required=True,
                metavar="OUT",
                help="folder to write (model in OUT/model)",
            )
        elif name == "train":
            command.add_argument(
                "--output-dir", required=True, metavar="OUT", help="model folder to write"
            )
            command.add_argument(
                "--resume",
                action="store_true",
                help="go on from OUT's last checkpoint (negatives reused where made the same way)",
            )
            command.add_argument(
                "--overwrite-output-dir",
                action="store_true",
                help="clear the earlier run in OUT (checkpoints, negatives, model files) and "
                "train afresh; without this or --resume a non-empty OUT is refused",
            )
        else:
            command.add_argument("--out", required=True, metavar="OUT", help="data folder to write")
            command.add_argument(
                "--dry-run", action="store_true", help="print the calls, tokens and cost expected"
            )
        add_setting_flags(command, name)
    return parser


def config_from_args(args: argparse.Namespace) -> KitConfig:
    """The config file (or defaults) with the flags given on the command line applied."""
    overrides: dict[str, dict[str, Any]] = {}
    sources = {}
    given = getattr(args, GIVEN_AS, {})
    for dest, value in vars(args).items():
        if "." in dest:
            section, key = dest.split(".", 1)
            overrides.setdefault(section, {})[key] = value
            flag = given.get((section, key)) or setting_flag(section, key)
            sources[(section, key)] = f"command line {flag}"
    if args.quiet:
        overrides.setdefault("retrieval", {})["show_progress"] = False
        sources[("retrieval", "show_progress")] = "command line --quiet"
    return load_config(args.config, overrides, sources)


def run(args: argparse.Namespace) -> int:
    if args.command == "merge":
        from eedi_utils.merge import merge_models

        out = merge_models(args.merge_models, args.out, args.base, args.alpha)
        print(f"wrote {out}", file=sys.stderr)
        return 0
    if args.command == "train":  # before loading anything
        from eedi_utils.train.retriever.run import check_output_dir

        check_output_dir(args.output_dir, args.resume, args.overwrite_output_dir)
    config = config_from_args(args)
    source = resolve_data_dir(args.data_dir)
    print(f"data: {source}", file=sys.stderr)
    data = CompetitionData(source.path)
    if args.command == "predict":
        out = args.out or output_dir() / "submission.csv"
        path = pipeline.predict(data, out, None, config)
        print(f"wrote {path}", file=sys.stderr)
    elif args.command == "train":
        from eedi_utils.train.retriever.run import RetrieverTraining

        training = RetrieverTraining(data, args.output_dir, config)
        training.run(resume=args.resume, overwrite=args.overwrite_output_dir)
        if not training.state.is_main_process:  # it finishes once the model is saved
            return 0
        if training.history:
            print(json.dumps(training.history[-1], indent=2))
        tuning = training.prior_tuning
        for row in tuning.table if tuning else []:
            print(f"unseen prior {row}", file=sys.stderr)
        if tuning and tuning.cross_fitted:
            print(f"unseen prior, the figure to report: {tuning.cross_fitted}", file=sys.stderr)
        for note in tuning.notes if tuning else []:
            print(f"warning: {note}", file=sys.stderr)
        stored = read_prior(args.output_dir)
        print(f"unseen prior stored: {stored.strength} ({training.prior_source})", file=sys.stderr)
        print(f"model saved in {args.output_dir}", file=sys.stderr)
    elif args.command == "train-reranker":
        from eedi_utils.train.reranker.run import RerankerTraining

        reranker = RerankerTraining(data, args.output_dir, config)
        folder = reranker.run()
        print(json.dumps(summary(reranker.reports, config.retrieval.top_k), indent=2))
        print(f"reranker saved in {folder}: set [rerank] model to it", file=sys.stderr)
    elif args.command in ("paraphrase", "synthesize"):
        return generate(args, config, data)
    elif args.command == "export":
        from eedi_utils.export.run import ExportCheckFailed, export_model

        try:
            record = export_model(args.model, args.to, data, config, args.overwrite)
        except ExportCheckFailed as err:
            print(json.dumps(err.record, indent=2))
            print(f"eedi: export check failed: {err}", file=sys.stderr)
            return 1
        print(json.dumps(record, indent=2))
        print(f"wrote {args.to}: eedi predict --model {args.to}", file=sys.stderr)
    else:
        report = pipeline.evaluate(data, None, config, args.fold, args.max_questions)
        print(json.dumps({"data_dir": str(source.path), **report}, indent=2))
    return 0


def summary(reports: dict[str, dict], k: int) -> dict[str, dict]:
    """MAP@k, seen, unseen, unseen share and the leaderboard estimate of each report."""
    key, estimate = map_key(k), lb_key(k)
    return {
        name: {
            key: report[key],
            "seen": report["seen"][key],
            "unseen": report["unseen"][key],
            "unseen_share": report["unseen_share"],
            estimate: report[estimate],
        }
        for name, report in reports.items()
    }


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
    except (
        DataError,
        ConfigError,
        SubmissionError,
        MissingExtra,
        FileNotFoundError,
        ValueError,
    ) as err:
        print(f"eedi: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
