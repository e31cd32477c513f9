"""Offline set-up of a Kaggle kernel, run by the first cell of every notebook of the kit.

It ships in the code dataset beside the kit's wheel (scripts/push_datasets.py puts it there)
and runs before the kit is importable, so it uses the standard library only. It installs, with
`pip --no-index`, the kit (with its bundled model and the CPU runtimes of an exported model,
extras `default-model` and `cpu`) and every wheel found in the attached inputs, each pinned to the
version of its wheel file: a bare name would be "already satisfied" by an older copy in
Kaggle's image, and the versions the tests ran would never run.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

KIT_EXTRAS = "default-model,cpu"  # eedi_utils.kaggle.datasets.KIT_EXTRAS: the closure it ships
CONFIG_FILE_NAME = "eedi-kit.toml"


def wheel_folders(inputs: Path) -> list[Path]:
    """Every attached folder holding wheels, at any depth: a kernel's output mounts at
    input/notebooks/<owner>/<slug>/ and the wheels kernel writes into its wheels/ subfolder.
    A folder reached twice (a link, or two layouts of one input) counts once."""
    seen: set[tuple[int, int]] = set()
    folders = []
    for folder, subfolders, files in os.walk(inputs, followlinks=True):
        stat = os.stat(folder)  # os.path.samefile's test: links and bind mounts alike
        if (stat.st_dev, stat.st_ino) in seen:
            subfolders[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        if any(name.endswith(".whl") for name in files):
            folders.append(Path(folder))
    return sorted(folders)


def expects_vllm(config: Path | None) -> bool:
    """True when the run's config asks for the wheels kernel's output ([kaggle]
    attach_vllm_wheels): then vLLM must be among the wheels, not missed at `require("vllm")`."""
    if config is None or not config.is_file():
        return False
    with config.open("rb") as file:
        return bool(tomllib.load(file).get("kaggle", {}).get("attach_vllm_wheels", False))


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


def install_command(inputs: Path, config: Path | None = None) -> list[str]:
    """The offline pip command for the kit with its extras and every attached wheel;
    RuntimeError naming what is missing and where it looked."""
    folders = wheel_folders(inputs)
    if not folders:
        raise RuntimeError(
            f"no wheels under {inputs}: attach the code and wheels datasets "
            "(scripts/push_datasets.py) to this kernel"
        )
    pins = wheel_pins(folders)
    searched = ", ".join(str(f) for f in folders)
    kit = [p for p in pins if p.startswith("eedi-kit==")]
    if not kit:
        raise RuntimeError(f"no eedi_kit wheel among the wheels in {searched}")
    if expects_vllm(config) and not any(p.startswith("vllm==") for p in pins):
        raise RuntimeError(
            f"{config} sets [kaggle] attach_vllm_wheels = true, but no vllm wheel is under "
            f"{inputs} (wheels found in: {searched}): attach the wheels kernel's output "
            "(scripts/push_kernel.py wheels, then push this kernel again)"
        )
    requirements = [f"eedi-kit[{KIT_EXTRAS}]=={kit[0].split('==')[1]}"]
    requirements += [p for p in pins if p not in kit]
    links = [arg for folder in folders for arg in ("--find-links", str(folder))]
    return [sys.executable, "-m", "pip", "install", "--no-index", *links, *requirements]


def install(inputs: Path, config: Path | None = None) -> None:
    """pip-install the kit with its extras and every attached wheel, offline."""
    installed = subprocess.run(install_command(inputs, config), capture_output=True, text=True)
    print(installed.stdout, installed.stderr)  # into the notebook's log
    installed.check_returncode()
    importlib.invalidate_caches()


def main() -> None:
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    beside = Path(__file__).with_name(CONFIG_FILE_NAME)  # the code dataset's config
    config = Path(os.environ["EEDI_CONFIG"]) if os.environ.get("EEDI_CONFIG") else beside
    install(Path(os.environ.get("EEDI_KAGGLE_ROOT", "/kaggle"), "input"), config)


if __name__ == "__main__":
    main()
