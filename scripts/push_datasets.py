"""Build and push the datasets the Kaggle kernels attach: code, wheels, model, data.

    python scripts/push_datasets.py --config kit.toml [--only code wheels] [--build-only]

`kaggle datasets create` the first time, `kaggle datasets version` after, always keeping
subfolders; then it waits until Kaggle has processed each upload (`kaggle datasets status`
says ready for a version number above the one before the upload), so a kernel pushed next can
attach them. The model and data datasets exist only
when the config names models ([retrieval] models) or generated rows ([train] extra_train_files).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eedi_utils.config import load_config
from eedi_utils.kaggle.cli import exit_status, push_dataset, username, wait_for_dataset
from eedi_utils.kaggle.datasets import (
    DATASET_KINDS,
    build_dataset,
    datasets_in_use,
    write_dataset_metadata,
)

PROJECT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="the run's TOML config (shipped as well)")
    parser.add_argument("--user", default="", help="Kaggle user; default: from credentials")
    parser.add_argument("--only", nargs="+", choices=DATASET_KINDS)
    parser.add_argument("--build-dir", type=Path, default=PROJECT / "build" / "datasets")
    parser.add_argument("--message", default="eedi-kit update", help="version notes")
    parser.add_argument("--build-only", action="store_true", help="build, do not push")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for processing")
    parser.add_argument("--poll-seconds", type=float, default=10.0)
    parser.add_argument("--timeout-minutes", type=float, default=30.0)
    args = parser.parse_args(argv)

    return exit_status(lambda: push(args))


def push(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    in_use = datasets_in_use(config)
    user = username(args.user or config.kaggle.username)
    for kind in args.only or list(in_use):
        if kind not in in_use:
            print(f"{kind}: this config has nothing for it, skipped")
            continue
        dataset_id = f"{user}/{in_use[kind]}"
        folder = build_dataset(kind, args.build_dir / in_use[kind], config, PROJECT, args.config)
        write_dataset_metadata(folder, dataset_id)
        print(f"{kind}: built {folder}")
        if args.build_only:
            continue
        before = push_dataset(folder, dataset_id, args.message)
        if not args.no_wait:
            wait_for_dataset(dataset_id, before, args.poll_seconds, args.timeout_minutes * 60)


if __name__ == "__main__":
    sys.exit(main())
