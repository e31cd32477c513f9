"""Submit a pushed inference kernel's version to the competition.

    python scripts/submit.py [--kernel inference|inference-cpu] [--version 3] [--message "..."]

Kaggle reruns that kernel version on the hidden test set and scores its submission.csv. A code
competition needs the version: by default the one scripts/push_kernel.py recorded last. The
CPU kernel (inference-cpu, no accelerator) is the kind of submission the efficiency track scores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eedi_utils.config import load_config
from eedi_utils.kaggle.cli import exit_status, submit, username
from eedi_utils.kaggle.kernels import METADATA_FILE, pushed_version, render_metadata

PROJECT = Path(__file__).resolve().parents[1]
SUBMITTING_KERNELS = ("inference", "inference-cpu")
"""The kernels that write submission.csv: on T4 x2, and on a CPU-only session."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kernel",
        default="inference",
        choices=SUBMITTING_KERNELS,
        help="the kernel in kernel-metadata/ whose version to submit",
    )
    parser.add_argument(
        "--version", type=int, help="kernel version; default: the one push_kernel.py recorded"
    )
    parser.add_argument("--build-dir", type=Path, default=PROJECT / "build" / "kernels")
    parser.add_argument("--message", default="eedi-kit submission")
    parser.add_argument("--file", default="submission.csv", help="output file of the kernel")
    parser.add_argument("--config", type=Path, help="the run's TOML config")
    parser.add_argument("--user", default="", help="Kaggle user; default: from credentials")
    args = parser.parse_args(argv)

    return exit_status(lambda: submit_kernel(args))


def submit_kernel(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    user = username(args.user or config.kaggle.username)
    template = PROJECT / "kernel-metadata" / args.kernel / METADATA_FILE
    kernel = render_metadata(template, user, config)["id"]
    version = args.version or pushed_version(args.build_dir / args.kernel, kernel)
    print(f"submitting {kernel} version {version}")
    print(submit(kernel, version, args.message, args.file).strip())


if __name__ == "__main__":
    sys.exit(main())
