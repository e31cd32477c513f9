"""Folders to upload as Kaggle datasets: the code wheel, offline wheels, models, data."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from eedi_utils.config import KitConfig
from eedi_utils.inputs import CONFIG_FILE_NAME

METADATA_FILE = "dataset-metadata.json"
BARE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def write_dataset_metadata(folder: Path, dataset_id: str) -> Path:
    """dataset-metadata.json with the slug as title (Kaggle wants both 6 to 50 characters)."""
    slug = dataset_id.split("/")[-1]
    if not re.fullmatch(r"[a-z0-9-]{6,50}", slug):
        raise ValueError(f"dataset slug must be 6-50 of a-z, 0-9 and '-': {slug!r}")
    meta = {"title": slug, "id": dataset_id, "licenses": [{"name": "CC0-1.0"}]}
    path = folder / METADATA_FILE
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path


def _pip(args: Sequence[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


BOOTSTRAP = "kaggle_bootstrap.py"
"""The notebooks' offline set-up script, shipped in the code dataset (notebooks/ holds it)."""


def build_code_dataset(folder: Path, project: Path, config_file: Path | None) -> Path:
    """This package as a wheel, the notebooks' bootstrap script, and the run's config as
    eedi-kit.toml (found by the kernels)."""
    folder.mkdir(parents=True, exist_ok=True)
    _pip(["wheel", "--no-deps", "--wheel-dir", str(folder), str(project)])
    shutil.copyfile(project / "notebooks" / BOOTSTRAP, folder / BOOTSTRAP)
    if config_file is not None:
        shutil.copyfile(config_file, folder / CONFIG_FILE_NAME)
    return folder


def pinned(requirements: Sequence[str]) -> list[str]:
    """A bare name becomes name==<version installed here>; anything with a specifier stays."""
    pins = []
    for requirement in requirements:
        if BARE_NAME.fullmatch(requirement):
            try:
                requirement = f"{requirement}=={metadata.version(requirement)}"
            except metadata.PackageNotFoundError as err:
                raise ValueError(
                    f"{requirement} is not installed here, so it has no version to pin: "
                    "give one in [kaggle] wheel_requirements, e.g. 'name==1.2.3'"
                ) from err
        pins.append(requirement)
    return pins


def download_command(
    folder: Path, requirements: Sequence[str], python_version: str, platforms: Sequence[str]
) -> list[str]:
    """pip download arguments for wheels only, for Kaggle's Python and platform, no deps."""
    args = ["download", "--only-binary=:all:", "--no-deps", "--dest", str(folder)]
    args += ["--python-version", python_version, "--implementation", "cp"]
    for platform in platforms:
        args += ["--platform", platform]
    return args + list(requirements)


def build_wheels_dataset(
    folder: Path,
    requirements: Sequence[str],
    python_version: str,
    platforms: Sequence[str],
    pip_options: Sequence[str] = (),
) -> Path:
    """Download the pinned wheels the kernels install offline with `pip install --no-index`."""
    folder.mkdir(parents=True, exist_ok=True)
    command = download_command(folder, pinned(requirements), python_version, platforms)
    _pip([*command, *pip_options])
    return folder


TRAINING_STATE = ("checkpoints", "negatives")
"""What `eedi train` leaves beside the model that inference never reads (optimizer states)."""


def build_folder_dataset(folder: Path, paths: Sequence[Path]) -> Path:
    """Copy files and folders into `folder` under their own names, without training state.

    The kernels look them up by name in /kaggle/input (kaggle_env.resolve_input_path).
    """
    names = [path.name for path in paths]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise ValueError(f"two inputs share a name, which Kaggle could not tell apart: {clashes}")
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        if path.is_dir():
            shutil.copytree(
                path,
                folder / path.name,
                ignore=shutil.ignore_patterns(*TRAINING_STATE),
                dirs_exist_ok=True,
            )
        elif path.is_file():
            shutil.copyfile(path, folder / path.name)
        else:
            raise FileNotFoundError(f"{path} not found")
    return folder


DATASET_KINDS = ("code", "wheels", "model", "data")
"""Each kind's slug is [kaggle] <kind>_dataset; kernel templates name it {<kind>_dataset}."""


def dataset_slugs(config: KitConfig) -> dict[str, str]:
    """Kind -> slug of every dataset kind, used or not."""
    return {kind: getattr(config.kaggle, f"{kind}_dataset") for kind in DATASET_KINDS}


def datasets_in_use(config: KitConfig) -> dict[str, str]:
    """Kind -> slug of each dataset this config ships: model and data only when it names any."""
    used = {
        "code": True,
        "wheels": True,
        "model": bool(config.retrieval.models),
        "data": bool(config.train.extra_train_files),
    }
    return {kind: slug for kind, slug in dataset_slugs(config).items() if used[kind]}


def build_dataset(
    kind: str, folder: Path, config: KitConfig, project: Path, config_file: Path | None
) -> Path:
    """Build one dataset folder from scratch (stale files from earlier builds are removed)."""
    shutil.rmtree(folder, ignore_errors=True)
    kaggle = config.kaggle
    if kind == "code":
        return build_code_dataset(folder, project, config_file)
    if kind == "wheels":
        return build_wheels_dataset(
            folder, kaggle.wheel_requirements, kaggle.python_version, kaggle.platforms
        )
    if kind == "model":
        return build_folder_dataset(folder, [Path(m) for m in config.retrieval.models])
    if kind == "data":
        return build_folder_dataset(folder, [Path(f) for f in config.train.extra_train_files])
    raise ValueError(f"unknown dataset kind {kind!r}; known: {', '.join(DATASET_KINDS)}")
