"""Build a kernel (notebook + kernel-metadata.json), push it, wait for it, fetch its output.

    python scripts/push_kernel.py inference --config kit.toml [--build-only] [--no-wait]
    python scripts/push_kernel.py inference --wait-only     # the version pushed last, again

The notebook is built from notebooks/<name>.py (py:percent -> ipynb, no outputs) next to the
metadata rendered from kernel-metadata/<name>/. The version the push reports is recorded in
<build-dir>/<name>/pushed.json (before anything else can fail), which scripts/submit.py submits
by default. The script then polls that version's status until its run completes or fails
(printing Kaggle's failure message), asking again after transient errors, and downloads the
output files the kernel is known for (OUTPUT_FILES; --file-pattern overrides) and the log into
<build-dir>/<name>/output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eedi_utils.config import load_config
from eedi_utils.kaggle.cli import (
    KaggleError,
    exit_status,
    fetch_output,
    push_kernel,
    username,
    wait_for_kernel,
)
from eedi_utils.kaggle.kernels import build_kernel, kernel_id, pushed_version, record_push

PROJECT = Path(__file__).resolve().parents[1]
KERNELS = sorted(p.parent.name for p in (PROJECT / "kernel-metadata").glob("*/*.json"))
OUTPUT_FILES = {
    "inference": r"(^|/)submission\.csv$",
    "inference-cpu": r"(^|/)submission\.csv$",
    "wheels": r"(^|/)manifest\.json$",  # the wheels themselves are gigabytes
    "train": r"^(?!(.*/)?(checkpoints|negatives)/)",  # the model, not optimizer states
}
"""What to download of each kernel's output (a regex the CLI searches in each path); a kernel
not listed gets everything."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kernel", choices=KERNELS)
    parser.add_argument("--config", type=Path, help="the run's TOML config")
    parser.add_argument("--user", default="", help="Kaggle user; default: from credentials")
    parser.add_argument("--build-dir", type=Path, default=PROJECT / "build" / "kernels")
    parser.add_argument("--build-only", action="store_true", help="build, do not push")
    parser.add_argument("--no-wait", action="store_true", help="push, do not wait for the run")
    parser.add_argument(
        "--wait-only",
        action="store_true",
        help="do not build or push: wait for the version recorded in pushed.json, fetch output",
    )
    parser.add_argument("--file-pattern", help="regex of the output files to download")
    parser.add_argument("--poll-seconds", type=float, default=60.0)
    parser.add_argument("--timeout-hours", type=float, default=12.0)
    args = parser.parse_args(argv)

    return exit_status(lambda: build_and_push(args))


def build_and_push(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    user = username(args.user or config.kaggle.username)
    folder = args.build_dir / args.kernel
    if not args.wait_only:
        template = PROJECT / "kernel-metadata" / args.kernel
        build_kernel(template, PROJECT / "notebooks", folder, user, config)
        print(f"built {folder}")
        if args.build_only:
            return
    kernel = kernel_id(folder)
    if args.wait_only:
        version = pushed_version(folder, kernel)
    else:
        push = push_kernel(folder)
        version = push.version
        print(f"pushed {kernel} version {version} (recorded in {record_push(folder, version)})")
        if push.dropped_sources:
            raise KaggleError(
                f"{kernel} version {version} was created and runs without these sources:\n  "
                + "\n  ".join(push.dropped_sources)
                + f"\nCancel it at https://www.kaggle.com/code/{kernel} (the CLI cannot), make "
                "the sources valid (scripts/push_datasets.py waits until datasets are ready; "
                "a kernel source must have run once), and push again."
            )
    if args.no_wait:
        return
    try:
        wait_for_kernel(kernel, version, args.poll_seconds, args.timeout_hours * 3600)
    except KaggleError as err:
        raise KaggleError(
            f"{err}\n(the run is recorded in {folder / 'pushed.json'}: "
            f"`python scripts/push_kernel.py {args.kernel} --wait-only` waits for it again)"
        ) from err
    pattern = args.file_pattern or OUTPUT_FILES.get(args.kernel, "")
    for path in fetch_output(kernel, version, folder / "output", pattern):
        print(f"output: {path}")


if __name__ == "__main__":
    sys.exit(main())
