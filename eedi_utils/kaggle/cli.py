"""The kaggle CLI, called through subprocess only, read as the real CLI writes (docs/kaggle-cli.md).

Importing the `kaggle` package authenticates at import time and exits the process when no
credentials are found, so nothing here imports it: every call is `kaggle ...` on PATH. The CLI
decides which credentials to use; several of its errors exit 0 and are recognised here by the
lines it prints.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from eedi_utils.config import ConfigError
from eedi_utils.inputs import COMPETITION

TERMINAL_STATUSES = {"complete", "error", "cancel_acknowledged", "cancel_requested"}
STATUS_LINE = re.compile(r'has status "(?:KernelWorkerStatus\.)?([A-Za-z_]+)"')
FAILURE_LINE = re.compile(r'Failure message: "(.*)"', re.DOTALL)
PUSHED_LINE = re.compile(r"Kernel version (\d+) successfully pushed")
USERNAME_LINE = re.compile(r"^- username: (.*)$", re.MULTILINE)
AUTH_REQUIRED = "Authentication required to call the Kaggle API."
EXIT_ZERO_ERRORS = re.compile(
    r"^(Kernel push error: .*|Dataset creation error: .*|Dataset version creation error: .*"
    r"|The following are not valid (?:dataset|competition|kernel) sources .*)$",
    re.MULTILINE,
)
"""Lines the CLI prints for a failed push or upload while still exiting 0 (EXT:kernels_push_cli,
dataset_create_new_cli, dataset_create_version_cli)."""
DATASET_READY, DATASET_FAILED = "ready", {"failed", "deleted"}
NO_CREDENTIALS = (
    "the kaggle CLI found no credentials. Log in with `kaggle auth login`, or give it an API "
    "token (https://www.kaggle.com/settings/api) as $KAGGLE_API_TOKEN (the token or a file "
    "holding it) or in ~/.kaggle/access_token, or a legacy kaggle.json in $KAGGLE_CONFIG_DIR, "
    "~/.kaggle or ~/.config/kaggle (or $KAGGLE_USERNAME with $KAGGLE_KEY)"
)


class KaggleError(RuntimeError):
    """A kaggle CLI call that failed, with the CLI's own message."""


def call_kaggle(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """`kaggle ARGS` as it ran; KaggleError when the CLI is missing or has no credentials."""
    try:
        result = subprocess.run(["kaggle", *args], capture_output=True, text=True)
    except FileNotFoundError as err:
        raise KaggleError(
            "the `kaggle` command is not on PATH: pip install 'eedi-kit[kaggle]'"
        ) from err
    if AUTH_REQUIRED in result.stdout + result.stderr:
        raise KaggleError(NO_CREDENTIALS)
    return result


def run_kaggle(args: Sequence[str]) -> str:
    """`kaggle ARGS`'s standard output; KaggleError with the CLI's message when it exits
    non-zero or prints one of the errors it exits 0 with."""
    result = call_kaggle(args)
    if result.returncode != 0:
        raise KaggleError(
            f"kaggle {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout}{result.stderr}".rstrip()
        )
    errors = EXIT_ZERO_ERRORS.findall(result.stdout)
    if errors:
        raise KaggleError(f"kaggle {' '.join(args)}: " + "\n".join(errors))
    return result.stdout


def username(configured: str = "") -> str:
    """The Kaggle user that owns datasets and kernels: the one configured, else the one the
    CLI authenticates as (`kaggle config view`)."""
    if configured:
        return configured
    found = USERNAME_LINE.search(run_kaggle(["config", "view"]))
    if found is None or found.group(1).strip() in ("", "None"):
        raise KaggleError(
            "Kaggle user name unknown: `kaggle config view` names none; set [kaggle] username "
            "in the config or pass --user"
        )
    return found.group(1).strip()


def exit_status(body: Callable[[], object]) -> int:
    """Run a script's body: 0, or 2 with the error's message on stderr."""
    try:
        body()
    except (KaggleError, ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def dataset_status(dataset_id: str) -> str | None:
    """The dataset's processing status (`ready`, `failed`, ... EXT:dataset_status), None when
    it does not exist (the CLI exits 1 with a 404)."""
    result = call_kaggle(["datasets", "status", dataset_id])
    if result.returncode != 0:
        if "404" in result.stderr:
            return None
        raise KaggleError(f"kaggle datasets status {dataset_id} failed:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1].strip()


def push_dataset(folder: Path, dataset_id: str, message: str) -> str:
    """Create the dataset the first time, add a version after; subfolders are always kept
    (the CLI's --dir-mode default, skip, drops them)."""
    keep_folders = ["--dir-mode", "zip"]
    if dataset_status(dataset_id) is not None:
        args = ["datasets", "version", "-p", str(folder), "-m", message, *keep_folders]
    else:
        args = ["datasets", "create", "-p", str(folder), *keep_folders]
    return run_kaggle(args)


def wait_for_dataset(
    dataset_id: str,
    poll_seconds: float = 10.0,
    timeout_seconds: float = 1800.0,
    sleep: Callable[[float], None] = time.sleep,
    report: Callable[[str], None] = print,
) -> None:
    """Wait until Kaggle has processed an upload (datasets are processed after the CLI
    returns); a kernel pushed before that may find the dataset not a valid source."""
    waited = 0.0
    while True:
        status = dataset_status(dataset_id)
        if status == DATASET_READY:
            report(f"{dataset_id}: ready after {waited:.0f} s")
            return
        if status in DATASET_FAILED:
            raise KaggleError(f"Kaggle could not process dataset {dataset_id}: {status}")
        if waited >= timeout_seconds:
            raise KaggleError(f"{dataset_id} still {status or 'not found'} after {waited:.0f} s")
        report(f"{dataset_id}: {status or 'not found yet'} after {waited:.0f} s")
        sleep(poll_seconds)
        waited += poll_seconds


def push_kernel(folder: Path) -> int:
    """Push a built kernel folder (its notebook and kernel-metadata.json); Kaggle runs it.
    Returns the version number the CLI reports."""
    output = run_kaggle(["kernels", "push", "-p", str(folder)])
    pushed = PUSHED_LINE.search(output)
    if pushed is None:
        raise KaggleError(f"kaggle kernels push printed no version number:\n{output}")
    return int(pushed.group(1))


def kernel_status(kernel_id: str) -> tuple[str, str]:
    """(status, failure message) of the kernel's latest run, e.g. ('error', 'OOM')."""
    output = run_kaggle(["kernels", "status", kernel_id])
    match = STATUS_LINE.search(output)
    if match is None:
        raise KaggleError(f"unexpected `kaggle kernels status` output: {output!r}")
    failure = FAILURE_LINE.search(output)
    return match.group(1).lower(), failure.group(1) if failure else ""


def wait_for_kernel(
    kernel_id: str,
    poll_seconds: float = 30.0,
    timeout_seconds: float = 12 * 3600,
    sleep: Callable[[float], None] = time.sleep,
    report: Callable[[str], None] = print,
    stale_polls: int = 10,
) -> str:
    """Poll a kernel just pushed until its run completes or fails; KaggleError with Kaggle's
    message if it fails.

    Right after a push the status may still be the previous version's (it names no version):
    a terminal status counts only once this run was seen queued or running, or after
    `stale_polls` polls that saw nothing else (a run that finished before the first poll).
    """
    waited, seen_running, stale = 0.0, False, 0
    while True:
        status, failure = kernel_status(kernel_id)
        terminal = status in TERMINAL_STATUSES
        seen_running = seen_running or not terminal
        if terminal and not seen_running and stale < stale_polls:
            stale += 1
            report(f"{kernel_id}: {status} (the previous version's?) after {waited:.0f} s")
        elif terminal:
            break
        else:
            report(f"{kernel_id}: {status} after {waited:.0f} s")
        if waited >= timeout_seconds:
            raise KaggleError(f"{kernel_id} still {status} after {waited:.0f} s")
        sleep(poll_seconds)
        waited += poll_seconds
    report(f"{kernel_id}: {status} after {waited:.0f} s")
    if status != "complete":
        raise KaggleError(f"{kernel_id} ended with status {status}: {failure or 'no message'}")
    return status


def fetch_output(kernel_id: str, destination: Path) -> list[Path]:
    """Download the kernel's output files and its log into `destination`."""
    destination.mkdir(parents=True, exist_ok=True)
    run_kaggle(["kernels", "output", kernel_id, "-p", str(destination), "-o"])
    return sorted(p for p in destination.rglob("*") if p.is_file())


def submit(kernel_id: str, version: int, message: str, file_name: str) -> str:
    """Submit version `version` of a kernel to the competition: a code competition needs both
    the kernel and its version (EXT:competition_submit_code); Kaggle reruns that version."""
    args = ["competitions", "submit", COMPETITION, "-k", kernel_id, "-v", str(version)]
    return run_kaggle([*args, "-f", file_name, "-m", message])


if __name__ == "__main__":  # `python -m eedi_utils.kaggle.cli`: the user the CLI acts as
    try:
        print(f"kaggle user: {username()}")
    except KaggleError as err:
        sys.exit(f"error: {err}")
