"""A stand-in for the `kaggle` CLI: records each call and checks the folders it is given.

State lives in $FAKE_KAGGLE_DIR: calls.jsonl (one call per line: args and, for uploads, the
files of the folder), datasets.txt (datasets that exist), statuses.txt (the kernel statuses
to report, one per `kernels status` call; the last one repeats). `competitions download`
zips the files of $FAKE_KAGGLE_DATA.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path

STATE = Path(os.environ["FAKE_KAGGLE_DIR"])


def option(args: list[str], *names: str) -> str | None:
    for name in names:
        if name in args:
            return args[args.index(name) + 1]
    return None


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(1)


def check_upload(args: list[str], metadata_file: str) -> dict:
    folder = Path(option(args, "-p", "--path") or ".")
    if not (folder / metadata_file).is_file():
        fail(f"Metadata file not found: {folder / metadata_file}")
    meta = json.loads((folder / metadata_file).read_text())
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return {"meta": meta, "files": files}


def main(args: list[str]) -> None:
    record: dict = {"args": args}
    try:
        respond(args, record)
    finally:  # failed calls are recorded too
        with (STATE / "calls.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")


def respond(args: list[str], record: dict) -> None:
    group, command = args[0], args[1]
    if group == "datasets" and command == "status":
        existing = (
            (STATE / "datasets.txt").read_text().split()
            if (STATE / "datasets.txt").exists()
            else []
        )
        if args[2] not in existing:
            fail("404 Client Error: Not Found")
        print("ready")
    elif group == "datasets" and command in ("create", "version"):
        if option(args, "-r", "--dir-mode") not in ("zip", "tar"):
            fail("subfolders would be skipped: no --dir-mode zip|tar")
        record.update(check_upload(args, "dataset-metadata.json"))
        with (STATE / "datasets.txt").open("a") as f:
            f.write(record["meta"]["id"] + "\n")
        print(f"Dataset {command} successful")
    elif group == "kernels" and command == "push":
        record.update(check_upload(args, "kernel-metadata.json"))
        if record["meta"]["code_file"] not in record["files"]:
            fail("Source file not found")
        print("Kernel version 3 successfully pushed.")
    elif group == "kernels" and command == "status":
        statuses = (STATE / "statuses.txt").read_text().split("\n")
        calls = STATE / "status_calls"
        n = int(calls.read_text()) if calls.exists() else 0
        calls.write_text(str(n + 1))
        status, _, failure = statuses[min(n, len(statuses) - 1)].partition("|")
        print(f'{args[2]} has status "KernelWorkerStatus.{status.upper()}"')
        if failure:
            print(f'Failure message: "{failure}"')
    elif group == "kernels" and command == "output":
        target = Path(option(args, "-p", "--path") or ".")
        (target / "submission.csv").write_text("QuestionId_Answer,MisconceptionId\n")
        (target / f"{args[2].split('/')[1]}.log").write_text("[]")
    elif group == "competitions" and command == "download":
        target = Path(option(args, "-p", "--path") or ".")
        with zipfile.ZipFile(target / f"{option(args, '-c')}.zip", "w") as archive:
            for path in Path(os.environ["FAKE_KAGGLE_DATA"]).iterdir():
                archive.write(path, path.name)
    elif group == "competitions" and command == "submit":
        print("Successfully submitted to Eedi - Mining Misconceptions in Mathematics")
    else:
        fail(f"stand-in does not know: {args}")


if __name__ == "__main__":
    main(sys.argv[1:])
