"""Offline set-up of a Kaggle kernel, run by the first cell of every notebook of the kit.

It ships in the code dataset beside the kit's wheel (scripts/push_datasets.py puts it there)
and runs before the kit is importable, so it uses the standard library only. It installs, with
`pip --no-index`, the kit and every wheel found in the attached inputs, each pinned to the
version of its wheel file: a bare name would be "already satisfied" by an older copy in
Kaggle's image, and the versions the tests ran would never run.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

DEPTHS = ("*", "*/*", "*/*/*")  # /kaggle/input/<slug>, datasets/<owner>/<slug>, ...


def wheel_folders(inputs: Path) -> list[Path]:
    """Every attached folder holding wheels."""
    return sorted({w.parent for depth in DEPTHS for w in inputs.glob(f"{depth}/*.whl")})


def wheel_pins(folders: list[Path]) -> list[str]:
    """`name==version` for each distribution among the wheels (the highest version found)."""
    versions: dict[str, str] = {}
    for folder in folders:
        for wheel in folder.glob("*.whl"):
            name, version = wheel.name.split("-")[:2]
            name = name.lower().replace("_", "-")
            if name not in versions or _version_key(version) > _version_key(versions[name]):
                versions[name] = version
    return [f"{name}=={version}" for name, version in sorted(versions.items())]


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in version.replace("+", ".").split("."))


def install(inputs: Path) -> None:
    """pip-install the kit with its default model and every attached wheel, offline."""
    folders = wheel_folders(inputs)
    if not folders:
        raise RuntimeError(
            f"no wheels under {inputs}: attach the code and wheels datasets "
            "(scripts/push_datasets.py) to this kernel"
        )
    pins = wheel_pins(folders)
    kit = [p for p in pins if p.startswith("eedi-kit==")]
    if not kit:
        raise RuntimeError(f"no eedi_kit wheel among {[str(f) for f in folders]}")
    requirements = [f"eedi-kit[default-model]=={kit[0].split('==')[1]}"]
    requirements += [p for p in pins if p not in kit]
    links = [arg for folder in folders for arg in ("--find-links", str(folder))]
    command = [sys.executable, "-m", "pip", "install", "--no-index", *links, *requirements]
    installed = subprocess.run(command, capture_output=True, text=True)
    print(installed.stdout, installed.stderr)  # into the notebook's log
    installed.check_returncode()
    importlib.invalidate_caches()


def main() -> None:
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    install(Path(os.environ.get("EEDI_KAGGLE_ROOT", "/kaggle"), "input"))


if __name__ == "__main__":
    main()
