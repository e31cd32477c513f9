"""Build a kernel (notebook + kernel-metadata.json), push it, wait for it, fetch its output.

    python scripts/push_kernel.py inference --config kit.toml [--build-only] [--no-wait]

The notebook is built from notebooks/<name>.py (py:percent -> ipynb, no outputs) next to the
metadata rendered from kernel-metadata/<name>/. After the push the script polls the kernel's
status until it completes or fails (printing Kaggle's failure message), then downloads the
output files and the log into <build-dir>/<name>/output. The version the push reports is
recorded in <build-dir>/<name>/pushed.json, which scripts/submit.py submits by default.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eedi_utils.config import load_config
from eedi_utils.kaggle.cli import (
    exit_status,
    fetch_output,
    push_kernel,
    username,
    wait_for_kernel,
)
from eedi_utils.kaggle.kernels import build_kernel, kernel_id, record_push

PROJECT = Path(__file__).resolve().parents[1]
KERNELS = sorted(p.parent.name for p in (PROJECT / "kernel-metadata").glob("*/*.json"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kernel", choices=KERNELS)
    parser.add_argument("--config", type=Path, help="the run's TOML config")
    parser.add_argument("--user", default="", help="Kaggle user; default: from credentials")
    parser.add_argument("--build-dir", type=Path, default=PROJECT / "build" / "kernels")
    parser.add_argument("--build-only", action="store_true", help="build, do not push")
    parser.add_argument("--no-wait", action="store_true", help="push, do not wait for the run")
    parser.add_argument("--poll-seconds", type=float, default=60.0)
    parser.add_argument("--timeout-hours", type=float, default=12.0)
    args = parser.parse_args(argv)

    return exit_status(lambda: build_and_push(args))


def build_and_push(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    user = username(args.user or config.kaggle.username)
    folder = build_kernel(
        PROJECT / "kernel-metadata" / args.kernel,
        PROJECT / "notebooks",
        args.build_dir / args.kernel,
        user,
        config,
    )
    print(f"built {folder}")
    if args.build_only:
        return
    kernel = kernel_id(folder)
    version = push_kernel(folder)
    print(f"pushed {kernel} version {version} (recorded in {record_push(folder, version)})")
    if args.no_wait:
        return
    wait_for_kernel(kernel, args.poll_seconds, args.timeout_hours * 3600)
    for path in fetch_output(kernel, folder / "output"):
        print(f"output: {path}")


if __name__ == "__main__":
    sys.exit(main())
