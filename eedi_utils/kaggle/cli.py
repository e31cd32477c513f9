"""The kaggle CLI, called through subprocess only, read as the real CLI writes (docs/kaggle-cli.md).

Importing the `kaggle` package authenticates at import time and exits the process when no
credentials are found, so nothing here imports it: every call is `kaggle ...` on PATH. The CLI
decides which credentials to use; several of its errors exit 0 and are recognised here by the
lines it prints.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
INVALID_SOURCES = re.compile(r"^The following are not valid \w+ sources .*$", re.MULTILINE)
"""Printed by EXT:kernels_push_cli from the server's answer: the version exists already."""
TRANSIENT = re.compile(
    r"^(?:5\d\d Server Error|429 Client Error|Request failed|.*(?:ConnectionError|"
    r"Connection aborted|timed out|Temporary failure in name resolution)|"
    r"This is a problem on Kaggle's side|You have been rate limited)",
    re.MULTILINE,
)
"""An HTTP 5xx or 429 as CLI:main prints it (format_http_error: 'NNN Server Error: ...', or the
server's JSON message alone, then the hint for >= 500 or 429), or a lost connection: worth
asking again (kaggle-cli issue #1053: status 500s for days)."""
RETRY_SECONDS = tuple(
    float(wait)
    for wait in (os.environ.get("EEDI_KAGGLE_RETRY_SECONDS") or "5,15,45,120,300").split(",")
)
"""Waits between attempts of an idempotent call that failed transiently (about 8 minutes;
$EEDI_KAGGLE_RETRY_SECONDS, comma-separated, changes them)."""
DATASET_READY, DATASET_FAILED = "ready", {"failed", "deleted"}
FAILED_POLLS = 3
"""A failure seen before the version number rose is the upload's only after this many polls
(it could be the previous version's)."""
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


def call_with_retry(
    args: Sequence[str],
    waits: Sequence[float] = RETRY_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    report: Callable[[str], None] = print,
) -> subprocess.CompletedProcess[str]:
    """`kaggle ARGS` for a call that may be repeated (a status, a download), asked again after
    each wait while it fails transiently; KaggleError with the last message when none is left.
    The CLI itself retries only 429s and lost connections, and only for uploads."""
    for attempt, wait in enumerate([*waits, None], start=1):
        result = call_kaggle(args)
        if result.returncode == 0 or not TRANSIENT.search(result.stderr):
            return result
        if wait is None:
            raise KaggleError(
                f"kaggle {' '.join(args)} failed {attempt} times over {sum(waits):.0f} s, "
                f"last with:\n{result.stderr.strip()}"
            )
        first = result.stderr.strip().splitlines()[0]
        report(f"kaggle {args[0]} {args[1]}: {first}; asking again in {wait:.0f} s")
        sleep(wait)
    raise AssertionError("unreachable")


def run_kaggle(
    args: Sequence[str], retry: bool = False, sleep: Callable[[float], None] = time.sleep
) -> str:
    """`kaggle ARGS`'s standard output; KaggleError with the CLI's message when it exits
    non-zero or prints one of the errors it exits 0 with. `retry`: a call that may be repeated,
    asked again while it fails transiently (call_with_retry)."""
    result = call_with_retry(args, sleep=sleep) if retry else call_kaggle(args)
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


@dataclass(frozen=True)
class DatasetState:
    """A dataset's processing status and its newest version's number."""

    status: str
    version: int


def dataset_state(
    dataset_id: str, sleep: Callable[[float], None] = time.sleep
) -> DatasetState | None:
    """The dataset's status (`ready`, `failed`, ... EXT:dataset_status) and current version
    number (`--format json`), None when it does not exist (the CLI exits 1 with a 404)."""
    args = ["datasets", "status", dataset_id, "--format", "json(status,current_version_number)"]
    result = call_with_retry(args, sleep=sleep)
    if result.returncode != 0:
        if "404" in result.stderr:
            return None
        raise KaggleError(f"kaggle datasets status {dataset_id} failed:\n{result.stderr}")
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    return DatasetState(payload["status"], int(payload["current_version_number"] or 0))


def push_dataset(folder: Path, dataset_id: str, message: str) -> int:
    """Create the dataset the first time, add a version after; subfolders are always kept
    (the CLI's --dir-mode default, skip, drops them). Returns the version number it had before
    (0 for a new dataset): the upload is processed once the number has risen past it."""
    keep_folders = ["--dir-mode", "zip"]
    state = dataset_state(dataset_id)
    if state is not None:
        args = ["datasets", "version", "-p", str(folder), "-m", message, *keep_folders]
    else:
        args = ["datasets", "create", "-p", str(folder), *keep_folders]
    print(run_kaggle(args).strip())
    return state.version if state is not None else 0


def wait_for_dataset(
    dataset_id: str,
    after_version: int = 0,
    poll_seconds: float = 10.0,
    timeout_seconds: float = 1800.0,
    sleep: Callable[[float], None] = time.sleep,
    report: Callable[[str], None] = print,
) -> int:
    """Wait until Kaggle has processed the upload (datasets are processed after the CLI
    returns; a kernel pushed before may find the dataset not a valid source): `ready` counts
    only once the version number has risen past `after_version`, since right after `datasets
    version` the status may still be the previous version's; a failure counts once the number
    has risen, or after FAILED_POLLS polls in a row. Returns the new version."""
    waited, failed_polls = 0.0, 0
    while True:
        state = dataset_state(dataset_id, sleep=sleep)
        status = state.status if state is not None else "not found yet"
        newer = state is not None and state.version > after_version
        if newer and status == DATASET_READY:
            report(f"{dataset_id}: version {state.version} ready after {waited:.0f} s")
            return state.version
        failed_polls = failed_polls + 1 if status in DATASET_FAILED else 0
        if status in DATASET_FAILED and (newer or failed_polls >= FAILED_POLLS):
            raise KaggleError(f"Kaggle could not process dataset {dataset_id}: {status}")
        if waited >= timeout_seconds:
            raise KaggleError(f"{dataset_id} still {status} after {waited:.0f} s")
        shown = f"version {state.version} {status}" if state is not None else status
        report(f"{dataset_id}: {shown}, waiting for version {after_version + 1} ({waited:.0f} s)")
        sleep(poll_seconds)
        waited += poll_seconds


@dataclass(frozen=True)
class Push:
    """What `kernels push` reported: the version it created and the sources it dropped."""

    version: int
    dropped_sources: list[str]


def push_kernel(folder: Path) -> Push:
    """Push a built kernel folder (its notebook and kernel-metadata.json); Kaggle runs it.

    Sources the server refused are printed with the new version's number (EXT:kernels_push_cli:
    the version exists and runs without them), so they come back beside it for the caller to
    record the version before failing."""
    result = call_kaggle(["kernels", "push", "-p", str(folder)])
    output = result.stdout
    pushed = PUSHED_LINE.search(output)
    if result.returncode != 0 or pushed is None:
        errors = EXIT_ZERO_ERRORS.findall(output)
        shown = "\n".join(errors) or f"{output}{result.stderr}".strip()
        raise KaggleError(f"kaggle kernels push -p {folder}: {shown}")
    return Push(int(pushed.group(1)), INVALID_SOURCES.findall(output))


NO_RUN_STATUS = "new_script"
"""A version with no run (kagglesdk KernelWorkerStatus.NEW_SCRIPT; nothing in the CLI explains
it): waited on for `no_run_polls` polls, never for the whole timeout."""


def kernel_status(kernel_id: str, version: int, sleep=time.sleep) -> tuple[str, str]:
    """(status, failure message) of that version's run, e.g. ('error', 'OOM'): the CLI sends
    `owner/slug/N` as version label vN (EXT:kernels_status, _kernel_version_label)."""
    output = run_kaggle(["kernels", "status", f"{kernel_id}/{version}"], retry=True, sleep=sleep)
    match = STATUS_LINE.search(output)
    if match is None:
        raise KaggleError(f"unexpected `kaggle kernels status` output: {output!r}")
    failure = FAILURE_LINE.search(output)
    return match.group(1).lower(), failure.group(1) if failure else ""


def wait_for_kernel(
    kernel_id: str,
    version: int,
    poll_seconds: float = 30.0,
    timeout_seconds: float = 12 * 3600,
    sleep: Callable[[float], None] = time.sleep,
    report: Callable[[str], None] = print,
    no_run_polls: int = 10,
) -> str:
    """Poll version `version` of a kernel until its run completes or fails; KaggleError with
    Kaggle's message if it fails, and after `no_run_polls` polls that found no run."""
    waited, no_run = 0.0, 0
    while True:
        status, failure = kernel_status(kernel_id, version, sleep=sleep)
        if status in TERMINAL_STATUSES:
            break
        no_run = no_run + 1 if status == NO_RUN_STATUS else 0
        if no_run >= no_run_polls:
            raise KaggleError(
                f"{kernel_id} version {version} has no run ({status}) after {waited:.0f} s: "
                f"start it at https://www.kaggle.com/code/{kernel_id}, or push again"
            )
        report(f"{kernel_id} version {version}: {status} after {waited:.0f} s")
        if waited >= timeout_seconds:
            raise KaggleError(f"{kernel_id} version {version} still {status} after {waited:.0f} s")
        sleep(poll_seconds)
        waited += poll_seconds
    report(f"{kernel_id} version {version}: {status} after {waited:.0f} s")
    if status != "complete":
        raise KaggleError(
            f"{kernel_id} version {version} ended with status {status}: {failure or 'no message'}"
        )
    return status


def fetch_output(
    kernel_id: str, version: int, destination: Path, file_pattern: str = ""
) -> list[Path]:
    """Download that version's output files matching `file_pattern` (a regex searched in each
    output's path, EXT:kernels_output) and its log (always) into `destination`."""
    destination.mkdir(parents=True, exist_ok=True)
    args = ["kernels", "output", f"{kernel_id}/{version}", "-p", str(destination), "-o"]
    args += ["--file-pattern", file_pattern] if file_pattern else []
    run_kaggle(args, retry=True)
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
