"""A stand-in for the `kaggle` CLI (2.2.5), built from its source, message for message and exit
code for exit code. Each behaviour cites where the real CLI does it: EXT is
`src/kaggle/api/kaggle_api_extended.py`, CLI is `src/kaggle/cli.py` of Kaggle/kaggle-cli; the
strings and exit codes are collected with their sources in docs/kaggle-cli.md (section §N).

State lives in $FAKE_KAGGLE_DIR, which tests write to set up a scenario:
- calls.jsonl: every call (args; for uploads the metadata and the files), appended here.
- datasets.json: {dataset id: [statuses still to report]}; the last one repeats. An upload
  (re)starts the list from dataset_statuses.txt (one status a line; default: ready), after
  as many "ready" of the previous version as stale_ready.txt says (default 0).
- versions.json: {dataset id: current_version_number}; it rises when the new upload's status
  reaches ready (`datasets status --format json(...)`, EXT:dataset_status; whether Kaggle
  raises it earlier is not in the source).
- kernels.json: {kernel id: latest version}; a push adds one.
- statuses.txt: what `kernels status` reports for the latest version, one line per call
  ("status|failure message"), the last one repeating; an earlier version (`owner/slug/N`, sent
  as version label vN, EXT:kernels_status) reports complete. Without a version, a first
  "complete" is the previous version's (§2).
- status_failures.txt: how many of the next `kernels status` / `datasets status` / `kernels
  output` calls fail with HTTP 500 as CLI:main prints it (kaggle-cli issue #1053).
- push_error.txt / dataset_error.txt: the server's error for the next push / upload.
- $FAKE_KAGGLE_TOKEN_USER: the user the server names for an access token (default tokenuser).
- $FAKE_KAGGLE_DATA: files `competitions download` zips; $FAKE_KAGGLE_OUTPUT: the folder of
  files a kernel run leaves, subfolders too (default: an empty submission.csv).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path

STATE = Path(os.environ["FAKE_KAGGLE_DIR"])
COMPETITION_TITLE = "Eedi - Mining Misconceptions in Mathematics"
AUTH_HELP = """Authentication required to call the Kaggle API.

First, you will need a Kaggle account. You can sign up at
  https://www.kaggle.com/account/login

Recommended: log in with OAuth via a web-based authorization flow.
No token to manage; credentials are cached locally for you.
    kaggle auth login

If you'd rather not use OAuth, generate an API token at
  https://www.kaggle.com/settings/api  (click "Generate New Token" under "API")
and supply it to the CLI in one of these ways:

  Option A: Environment variable
    export KAGGLE_API_TOKEN=xxxxxxxxxxxxxx  # token copied from the settings UI

  Option B: API token file
    Save the token to ~/.kaggle/access_token
"""
NOT_FOUND_HINT = (
    "The resource was not found. Check the spelling of the reference you passed.\n"
    "References are usually '<owner>/<slug>', which you can find in the resource's URL.\n"
    "To search for one, try 'kaggle search <query>'."
)
METADATA_SKIPPED = {"dataset-metadata.json", "kernel-metadata.json", "datapackage.json"}
SERVER_ERROR_HINT = (  # EXT:_HTTP_ERROR_HINTS, for a status >= 500
    "This is a problem on Kaggle's side, not with your command. Please try again later."
)
STALE = "stale:"  # a status of the previous version, reported before the new upload's


class CliError(Exception):
    """What CLI:main prints to stderr before exit 1 (§0: ValueError, HTTPError)."""


def load(name: str, default):
    path = STATE / name
    return json.loads(path.read_text()) if path.exists() else default


def save(name: str, value) -> None:
    (STATE / name).write_text(json.dumps(value))


def option(args: list[str], *names: str) -> str | None:
    for name in names:
        if name in args:
            return args[args.index(name) + 1]
    return None


def take_once(name: str) -> str | None:
    """The content of a one-shot scenario file, which is removed."""
    path = STATE / name
    if not path.exists():
        return None
    text = path.read_text().strip()
    path.unlink()
    return text


# --- authentication: EXT:KaggleApi.authenticate (§7) ------------------------------------------
def config_dir() -> Path:
    home = Path.home()
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"])
    if (home / ".kaggle").is_dir():
        return home / ".kaggle"
    return Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"


def authenticated_user() -> tuple[str, str] | None:
    """(user, auth method) from the first credentials found, in the CLI's order."""
    home = Path.home()
    token = os.environ.get("KAGGLE_API_TOKEN")
    files = [home / ".kaggle" / "access_token", home / ".kaggle" / "access_token.txt"]
    if token or any(f.is_file() for f in files):  # kagglesdk get_access_token_from_env
        return os.environ.get("FAKE_KAGGLE_TOKEN_USER", "tokenuser"), "ACCESS_TOKEN"
    values = {}
    if (config_dir() / "kaggle.json").is_file():
        values = json.loads((config_dir() / "kaggle.json").read_text())
    values.update(  # EXT:read_config_environment: KAGGLE_* variables overlay the file
        {k[len("KAGGLE_") :].lower(): v for k, v in os.environ.items() if k.startswith("KAGGLE_")}
    )
    if values.get("username") and values.get("key"):
        return values["username"], "LEGACY_API_KEY"
    oauth = home / ".kaggle" / "credentials.json"  # KaggleCredentials.DEFAULT_CREDENTIALS_FILE
    if oauth.is_file():
        return json.loads(oauth.read_text()).get("username", "oauthuser"), "OAUTH"
    return None


# --- commands ------------------------------------------------------------------------------
def upload(args: list[str], metadata_file: str, record: dict) -> dict:
    folder = Path(option(args, "-p", "--path") or ".")
    if not folder.is_dir():
        raise CliError(f"Invalid folder: {folder}")
    if not (folder / metadata_file).is_file():  # EXT:kernels_push names the path, datasets not
        shown = folder / metadata_file if metadata_file == "kernel-metadata.json" else metadata_file
        raise CliError(f"Metadata file not found: {shown}")
    meta = json.loads((folder / metadata_file).read_text())
    mode = option(args, "-r", "--dir-mode") or "skip"  # EXT:upload_files, default skip (§4)
    files = []
    for entry in sorted(folder.iterdir()):
        if entry.name in METADATA_SKIPPED:
            continue
        if entry.is_dir():
            if mode == "skip":
                print(f"Skipping folder: {entry.name}; use '--dir-mode' to upload folders")
                continue
            files += [f"{entry.name}.{mode}"]
        else:
            files.append(entry.name)
    record.update(meta=meta, files=files, folder=str(folder))
    return meta


def fail_transiently(service: str) -> None:
    """HTTP 500 for this call if status_failures.txt still counts some (§0, issue #1053), in
    the two forms CLI:main prints: requests' text, or alternately the server's JSON message
    alone (kagglesdk _prepare_response), each followed by format_http_error's hint."""
    path = STATE / "status_failures.txt"
    left = int(path.read_text()) if path.exists() else 0
    if left > 0:
        path.write_text(str(left - 1))
        first = (
            f"500 Server Error: Internal Server Error for url: https://api.kaggle.com/v1/{service}"
            if left % 2
            else "Internal error"
        )
        raise CliError(f"{first}\n\n{SERVER_ERROR_HINT}")


def datasets_status(args: list[str]) -> None:  # EXT:dataset_status_cli (§5)
    fail_transiently("datasets.DatasetApiService/GetDatasetStatus")
    datasets = load("datasets.json", {})
    if args[2] not in datasets:
        raise CliError(
            "404 Client Error: Not Found for url: "
            "https://api.kaggle.com/v1/datasets.DatasetApiService/GetDatasetStatus"
            f"\n\n{NOT_FOUND_HINT}"
        )
    statuses = datasets[args[2]]
    versions = load("versions.json", {})
    status = statuses[0]
    if status == "ready":  # the new upload is processed: its number is the current one
        versions[args[2]] = load("pending.json", {}).get(args[2], versions.get(args[2], 1))
        save("versions.json", versions)
    status = status.removeprefix(STALE)
    if len(statuses) > 1:
        datasets[args[2]] = statuses[1:]
        save("datasets.json", datasets)
    form = option(args, "--format")
    if form is None:
        print(status, end="")  # printed by CLI:main with end=""
        return
    if not form.startswith("json"):
        raise CliError(f"Unsupported format value: {form!r}. Supported formats: json")
    fields = (
        form[5:-1].split(",") if form.startswith("json(") else ["status", "current_version_number"]
    )
    payload = {"status": status, "current_version_number": versions.get(args[2], 0)}
    print(json.dumps({field: payload[field] for field in fields}), end="")


def datasets_upload(command: str, args: list[str], record: dict) -> None:  # §4
    meta = upload(args, "dataset-metadata.json", record)
    dataset_id = meta.get("id", "")
    datasets = load("datasets.json", {})
    if command == "create":  # EXT:dataset_create_new
        for key in ("id", "title", "licenses"):
            if key not in meta:
                raise CliError(f"Key {key} not found in data")
        if len(meta["licenses"]) != 1:
            raise CliError("Please specify exactly one license")
        slug = dataset_id.split("/")[1]
        if not 6 <= len(slug) <= 50:
            raise CliError("The dataset slug must be between 6 and 50 characters")
        if not 6 <= len(meta["title"]) <= 50:
            raise CliError("The dataset title must be between 6 and 50 characters")
        if dataset_id in datasets:  # EXT:dataset_create_new pre-checks the slug
            print(
                f'Dataset creation error: The requested slug "{slug}" is already in use by a '
                "dataset. Please choose another slug."
            )
            return
    elif dataset_id not in datasets:
        raise CliError("404 Client Error: Not Found\n\n" + NOT_FOUND_HINT)
    if command == "version" and not option(args, "-m", "--message"):
        raise CliError("the following arguments are required: -m/--message")
    error = take_once("dataset_error.txt")
    if error:  # EXT:dataset_create_new_cli / dataset_create_version_cli: exit 0
        what = "Dataset creation error" if command == "create" else "Dataset version creation error"
        print(f"{what}: {error}")
        return
    stale = int((STATE / "stale_ready.txt").read_text()) if dataset_id in datasets and (
        STATE / "stale_ready.txt").exists() else 0  # fmt: skip
    statuses = load_lines("dataset_statuses.txt") or ["ready"]
    datasets[dataset_id] = [f"{STALE}ready"] * stale + statuses
    save("datasets.json", datasets)
    pending = load("pending.json", {})
    pending[dataset_id] = load("versions.json", {}).get(dataset_id, 0) + 1
    save("pending.json", pending)
    url = f"https://www.kaggle.com/datasets/{dataset_id}"
    if command == "create":
        print(f"Your private Dataset is being created. Please check progress at {url}")
    else:
        print(f"Dataset version is being created. Please check progress at {url}")


def load_lines(name: str) -> list[str]:
    path = STATE / name
    return [line for line in path.read_text().splitlines() if line] if path.exists() else []


def unversioned(source: str) -> str:
    """owner/slug of a source that may be pinned (owner/slug/N)."""
    return "/".join(source.split("/")[:2])


def kernels_push(args: list[str], record: dict) -> None:  # EXT:kernels_push / _cli (§1)
    meta = upload(args, "kernel-metadata.json", record)
    if "title" in meta and len(meta["title"]) < 5:  # optional, checked when given
        raise CliError("Title must be at least five characters")
    if not meta.get("code_file"):
        raise CliError("A source file must be specified in the metadata")
    if not (Path(record["folder"]) / meta["code_file"]).is_file():
        raise CliError(f"Source file not found: {Path(record['folder']) / meta['code_file']}")
    kernel_id = meta.get("id", "")
    if kernel_id.count("/") == 2:
        raise CliError("Kernel metadata 'id' (slug) cannot contain a version")
    if meta.get("language") not in ("python", "r", "rmarkdown"):
        raise CliError(
            "A valid language must be specified in the metadata. Valid options are "
            "['python', 'r', 'rmarkdown']"
        )
    if meta.get("kernel_type") not in ("script", "notebook"):
        raise CliError(
            "A valid kernel type must be specified in the metadata. Valid options are "
            "['script', 'notebook']"
        )
    record["enable_internet"] = meta.get("enable_internet", True)  # the code's default: True
    error = take_once("push_error.txt")
    if error:
        print(f"Kernel push error: {error}")  # exit 0
        return
    datasets = load("datasets.json", {})
    kernels = load("kernels.json", {})
    ready = {d for d in datasets if d in load("versions.json", {})}  # a version processed
    invalid = [s for s in meta.get("dataset_sources", []) if unversioned(s) not in ready]
    if invalid:
        print(
            "The following are not valid dataset sources and could not be added to the "
            f"kernel: {invalid}"
        )
    invalid = [s for s in meta.get("kernel_sources", []) if unversioned(s) not in kernels]
    if invalid:
        print(
            "The following are not valid kernel sources and could not be added to the "
            f"kernel: {invalid}"
        )
    kernels[kernel_id] = kernels.get(kernel_id, 0) + 1
    save("kernels.json", kernels)
    (STATE / "status_calls").unlink(missing_ok=True)  # the new run's statuses start
    url = f"https://www.kaggle.com/code/{kernel_id}"
    version = kernels[kernel_id]
    print(f"Kernel version {version} successfully pushed.  Please check progress at {url}")


def kernels_status(args: list[str]) -> None:  # EXT:kernels_status_cli (§2)
    fail_transiently("kernels.KernelsApiService/GetKernelSessionStatus")
    latest = load("kernels.json", {}).get(unversioned(args[2]))
    version = args[2].split("/")[2] if args[2].count("/") == 2 else None
    if latest is None or (version is not None and int(version) > latest):
        raise CliError("404 Client Error: Not Found\n\n" + NOT_FOUND_HINT)
    if version is not None and int(version) < latest:
        status, failure = "complete", ""  # an earlier version's run
    else:
        statuses = load_lines("statuses.txt") or ["complete"]
        calls = STATE / "status_calls"
        n = int(calls.read_text()) if calls.exists() else 0
        calls.write_text(str(n + 1))
        status, _, failure = statuses[min(n, len(statuses) - 1)].partition("|")
    print(f'{args[2]} has status "KernelWorkerStatus.{status.upper()}"')
    if failure:
        print(f'Failure message: "{failure}"')


def kernels_output(args: list[str]) -> None:  # EXT:kernels_output_cli (§3)
    fail_transiently("kernels.KernelsApiService/ListKernelSessionOutput")
    target = Path(option(args, "-p", "--path") or ".")
    target.mkdir(parents=True, exist_ok=True)
    pattern = option(args, "--file-pattern")
    source = Path(os.environ.get("FAKE_KAGGLE_OUTPUT") or STATE / "default-output")
    if not os.environ.get("FAKE_KAGGLE_OUTPUT"):
        source.mkdir(exist_ok=True)
        (source / "submission.csv").write_text("QuestionId_Answer,MisconceptionId\n")
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        name = path.relative_to(source).as_posix()  # item.file_name, maybe with a folder
        if pattern and not re.search(pattern, name):  # compiled_pattern.search(file_name)
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
        print(f"Output file downloaded to {target / name}")
    log = target / f"{args[2].split('/')[1]}.log"
    log.write_text("[]")
    print(f"Kernel log downloaded to {log} ")


def competitions_submit(args: list[str]) -> None:  # EXT:competition_submit_cli (§6)
    if not option(args, "-m", "--message"):
        raise CliError("the following arguments are required: -m/--message")
    kernel, version = option(args, "-k", "--kernel"), option(args, "-v", "--version")
    if (kernel is None) != (version is None):
        raise CliError(
            "Code competition submissions require both the kernel name and the version number"
        )
    if not option(args, "-f", "--file"):
        raise CliError("No file specified")
    if kernel.count("/") != 1:
        raise CliError("The kernel must be specified as <owner>/<notebook>")
    number = int(version) if version.isdigit() else None
    if number is None:
        raise CliError(f"invalid literal for int() with base 10: '{version}'")
    if not 1 <= number <= load("kernels.json", {}).get(kernel, 0):
        raise CliError(
            "Could not find competition or notebook - please verify that you entered the "
            "correct competition ID, notebook and version, and that the competition is still "
            "accepting submissions.\n  Error: 404 Client Error: Not Found"
        )
    print("Submission ref: 41234567")
    print("4 submissions remaining today.")
    print(f"Successfully submitted to {COMPETITION_TITLE}", end="")


def respond(args: list[str], record: dict) -> None:
    if args[:2] == ["config", "view"]:  # EXT:print_config_values (§7)
        user, method = record["auth"]
        print(f"Configuration values from {config_dir()}")
        print(f"- username: {user}\n- auth_method: {method}")
        print("- path: None\n- proxy: None\n- competition: None")
        return
    group, command = args[0], args[1]
    if group == "datasets" and command == "status":
        datasets_status(args)
    elif group == "datasets" and command in ("create", "version"):
        datasets_upload(command, args, record)
    elif group == "kernels" and command == "push":
        kernels_push(args, record)
    elif group == "kernels" and command == "status":
        kernels_status(args)
    elif group == "kernels" and command == "output":
        kernels_output(args)
    elif group == "competitions" and command == "download":
        target = Path(option(args, "-p", "--path") or ".")
        with zipfile.ZipFile(target / f"{option(args, '-c')}.zip", "w") as archive:
            for path in Path(os.environ["FAKE_KAGGLE_DATA"]).iterdir():
                archive.write(path, path.name)
    elif group == "competitions" and command == "submit":
        competitions_submit(args)
    else:
        raise CliError(f"stand-in does not know: {args}")


def main(args: list[str]) -> int:
    record: dict = {"args": args}
    try:
        auth = authenticated_user()
        if auth is None:  # printed at import and again by CLI:main, then exit(1) (§7)
            print(AUTH_HELP)
            print(AUTH_HELP)
            record["exit"] = 1
            return 1
        record["auth"] = auth
        respond(args, record)
        record["exit"] = 0
        return 0
    except CliError as err:
        print(err, file=sys.stderr)
        record["exit"] = 1
        return 1
    finally:  # every call is recorded, failed ones too
        with (STATE / "calls.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
