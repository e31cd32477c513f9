"""The kaggle CLI, called through subprocess only.

Importing the `kaggle` package authenticates at import time and exits the process when no
credentials are found, so nothing here imports it: every call is `kaggle ...` on PATH.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from eedi_utils.config import ConfigError
from eedi_utils.inputs import COMPETITION

TERMINAL_STATUSES = {"complete", "error", "cancel_acknowledged", "cancel_requested"}
STATUS_LINE = re.compile(r'has status "(?:KernelWorkerStatus\.)?([A-Za-z_]+)"')
FAILURE_LINE = re.compile(r'Failure message: "(.*)"', re.DOTALL)


class KaggleError(RuntimeError):
    """A kaggle CLI call that failed, or credentials that are missing."""


def kaggle_config_dir(environ: Mapping[str, str], home: Path | None) -> Path:
    """Where the kaggle CLI keeps kaggle.json: $KAGGLE_CONFIG_DIR, else ~/.kaggle."""
    return Path(environ.get("KAGGLE_CONFIG_DIR") or (home or Path.home()) / ".kaggle")


def credentials_source(environ: Mapping[str, str] | None = None, home: Path | None = None) -> str:
    """Which of the three credential forms is present; KaggleError naming all three if none."""
    environ = os.environ if environ is None else environ
    config_dir = kaggle_config_dir(environ, home)
    if environ.get("KAGGLE_API_TOKEN"):
        return "$KAGGLE_API_TOKEN"
    if environ.get("KAGGLE_USERNAME") and environ.get("KAGGLE_KEY"):
        return "$KAGGLE_USERNAME and $KAGGLE_KEY"
    if (config_dir / "kaggle.json").is_file():
        return str(config_dir / "kaggle.json")
    if (config_dir / "access_token").is_file():
        return str(config_dir / "access_token")
    raise KaggleError(
        "no Kaggle credentials: looked for $KAGGLE_API_TOKEN, for $KAGGLE_USERNAME with "
        f"$KAGGLE_KEY, and for {config_dir / 'kaggle.json'} (or {config_dir / 'access_token'}). "
        "Create a token at https://www.kaggle.com/settings/api."
    )


def username(
    configured: str = "", environ: Mapping[str, str] | None = None, home: Path | None = None
) -> str:
    """The Kaggle user that owns datasets and kernels: config, $KAGGLE_USERNAME, kaggle.json."""
    environ = os.environ if environ is None else environ
    if configured:
        return configured
    if environ.get("KAGGLE_USERNAME"):
        return environ["KAGGLE_USERNAME"]
    config_dir = kaggle_config_dir(environ, home)
    token_file = config_dir / "kaggle.json"
    if token_file.is_file():
        name = json.loads(token_file.read_text(encoding="utf-8")).get("username")
        if name:
            return str(name)
    raise KaggleError(
        "Kaggle user name unknown: set [kaggle] username in the config, pass --user, or set "
        f"$KAGGLE_USERNAME ({token_file} has none)"
    )


def script_user(user: str, configured: str, pushing: bool) -> str:
    """The Kaggle user a script acts for; when it will push, credentials are checked first and
    the form found is printed."""
    if pushing:
        print(f"credentials: {credentials_source()}")
    return username(user or configured)


def exit_status(body: Callable[[], object]) -> int:
    """Run a script's body: 0, or 2 with the error's message on stderr."""
    try:
        body()
    except (KaggleError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def run_kaggle(args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """`kaggle ARGS`, after checking credentials; KaggleError with its output if it fails."""
    credentials_source()
    try:
        result = subprocess.run(["kaggle", *args], capture_output=True, text=True)
    except FileNotFoundError as err:
        raise KaggleError(
            "the `kaggle` command is not on PATH: pip install 'eedi-kit[kaggle]'"
        ) from err
    if check and result.returncode != 0:
        raise KaggleError(
            f"kaggle {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout}{result.stderr}".rstrip()
        )
    return result


def dataset_exists(dataset_id: str) -> bool:
    return run_kaggle(["datasets", "status", dataset_id], check=False).returncode == 0


def push_dataset(folder: Path, dataset_id: str, message: str) -> str:
    """Create the dataset the first time, add a version after; subfolders are always kept."""
    keep_folders = ["--dir-mode", "zip"]
    if dataset_exists(dataset_id):
        args = ["datasets", "version", "-p", str(folder), "-m", message, *keep_folders]
    else:
        args = ["datasets", "create", "-p", str(folder), *keep_folders]
    return run_kaggle(args).stdout


def push_kernel(folder: Path) -> str:
    """Push a built kernel folder (its notebook and kernel-metadata.json); Kaggle runs it."""
    return run_kaggle(["kernels", "push", "-p", str(folder)]).stdout


def kernel_status(kernel_id: str) -> tuple[str, str]:
    """(status, failure message) of the kernel's latest version, e.g. ('error', 'OOM')."""
    output = run_kaggle(["kernels", "status", kernel_id]).stdout
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
) -> str:
    """Poll until the kernel completes or fails; KaggleError with Kaggle's message if it fails."""
    waited = 0.0
    while True:
        status, failure = kernel_status(kernel_id)
        report(f"{kernel_id}: {status} after {waited:.0f} s")
        if status in TERMINAL_STATUSES:
            break
        if waited >= timeout_seconds:
            raise KaggleError(f"{kernel_id} still {status} after {waited:.0f} s")
        sleep(poll_seconds)
        waited += poll_seconds
    if status != "complete":
        raise KaggleError(f"{kernel_id} ended with status {status}: {failure or 'no message'}")
    return status


def fetch_output(kernel_id: str, destination: Path) -> list[Path]:
    """Download the kernel's output files and its log into `destination`."""
    destination.mkdir(parents=True, exist_ok=True)
    run_kaggle(["kernels", "output", kernel_id, "-p", str(destination), "-o"])
    return sorted(p for p in destination.rglob("*") if p.is_file())


def submit(kernel_id: str, version: int | None, message: str, file_name: str) -> str:
    """Submit a kernel version's output file to the competition (a code competition)."""
    args = ["competitions", "submit", COMPETITION, "-k", kernel_id, "-f", file_name]
    args += ["-m", message]
    if version is not None:
        args += ["-v", str(version)]
    return run_kaggle(args).stdout


if __name__ == "__main__":  # `python -m eedi_utils.kaggle.cli`: which credentials would be used
    try:
        print(f"credentials: {credentials_source()}")
    except KaggleError as err:
        sys.exit(f"error: {err}")
