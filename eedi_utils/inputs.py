"""Where inputs come from and where outputs go, locally and on Kaggle."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

COMPETITION = "eedi-mining-misconceptions-in-mathematics"
DATA_DIR_VARIABLE = "EEDI_DATA_DIR"
CONFIG_VARIABLE = "EEDI_CONFIG"
RERUN_VARIABLE = "KAGGLE_IS_COMPETITION_RERUN"
ROOT_VARIABLE = "EEDI_KAGGLE_ROOT"
KERNEL_VARIABLE = "KAGGLE_KERNEL_RUN_TYPE"
"""Set by Kaggle inside every kernel: there, the bundled sample is never a fall-back."""
CONFIG_FILE_NAME = "eedi-kit.toml"
"""The run's config inside the code dataset, found by the kernels without a variable."""


def kaggle_root(environ: Mapping[str, str] | None = None) -> Path:
    """/kaggle, or $EEDI_KAGGLE_ROOT (a Kaggle-like tree for rehearsals)."""
    environ = os.environ if environ is None else environ
    return Path(environ.get(ROOT_VARIABLE) or "/kaggle")


def kaggle_input(environ: Mapping[str, str] | None = None) -> Path:
    """Where Kaggle mounts the competition data and the attached datasets."""
    return kaggle_root(environ) / "input"


@dataclass(frozen=True)
class DataSource:
    """A data folder in Kaggle's layout and how it was chosen."""

    path: Path
    origin: str

    def __str__(self) -> str:
        return f"{self.path} ({self.origin})"


def sample_dir() -> Path:
    """The small hand-written dataset shipped inside the package."""
    return Path(str(resources.files("eedi_utils") / "sample"))


def competition_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where Kaggle may mount the competition data: `input/competitions/<slug>` (kernels
    pushed with the kaggle CLI), `input/<slug>` (older notebooks)."""
    inputs = kaggle_input(environ)
    return [inputs / "competitions" / COMPETITION, inputs / COMPETITION]


def resolve_data_dir(
    explicit: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> DataSource:
    """First of: `explicit`, $EEDI_DATA_DIR, the Kaggle competition input (either layout),
    the bundled sample.

    A folder that is named explicitly (argument or variable) but missing is an error, never a
    silent fall-back to other data; so is a Kaggle kernel without the competition data (the
    commit run would look green on the sample and the scoring rerun would fail).
    """
    environ = os.environ if environ is None else environ
    for value, origin in (
        (explicit, "--data-dir"),
        (environ.get(DATA_DIR_VARIABLE), f"${DATA_DIR_VARIABLE}"),
    ):
        if value:
            path = Path(value)
            if not path.is_dir():
                raise FileNotFoundError(f"data folder from {origin} not found: {path}")
            return DataSource(path, origin)
    tried = competition_dirs(environ)
    for folder in tried:
        if folder.is_dir():
            return DataSource(folder, "Kaggle competition input")
    if environ.get(KERNEL_VARIABLE):
        raise FileNotFoundError(
            "inside a Kaggle kernel but the competition data is not attached; looked in "
            + ", ".join(str(f) for f in tried)
            + f" (add {COMPETITION} to the kernel's competition_sources)"
        )
    return DataSource(sample_dir(), "bundled sample")


def is_competition_rerun(environ: Mapping[str, str] | None = None) -> bool:
    """True only in Kaggle's scoring rerun, where the hidden test replaces test.csv."""
    environ = os.environ if environ is None else environ
    return bool(environ.get(RERUN_VARIABLE))


def output_dir(environ: Mapping[str, str] | None = None) -> Path:
    """/kaggle/working on Kaggle, else the current folder."""
    working = kaggle_root(environ) / "working"
    return working if working.is_dir() else Path.cwd()


def _input_folders(environ: Mapping[str, str] | None) -> list[Path]:
    """Attached inputs, at /kaggle/input/<slug> or one or two levels deeper."""
    root = kaggle_input(environ)
    return sorted(p for pattern in ("*", "*/*", "*/*/*") for p in root.glob(pattern) if p.is_dir())


def resolve_input_path(
    path: str | Path, environ: Mapping[str, str] | None = None, dataset: str = ""
) -> Path:
    """`path` if it exists here, else the Kaggle input entry of the same name.

    This is what lets one config serve both places: `models = ["runs/minilm-ft"]` is the local
    folder, and on Kaggle the `minilm-ft` folder of the attached model dataset. Entries inside
    the dataset named `dataset` (its slug, in any input layout) come first; more than one
    match is an error that lists them, never a silent pick (a data dataset's `train.csv` beside
    the competition's).
    """
    path = Path(path)
    if path.exists():
        return path
    found = [f / path.name for f in _input_folders(environ) if (f / path.name).exists()]
    preferred = [match for match in found if dataset and dataset in match.parent.parts]
    matches = preferred or found
    if len(matches) > 1:
        listed = ", ".join(str(m) for m in matches)
        raise FileExistsError(f"{path.name!r} is in several Kaggle inputs: {listed}; name one")
    if not matches:
        where = f"dataset {dataset!r} nor any other" if dataset else "any dataset"
        raise FileNotFoundError(
            f"{path} not found here, nor as {path.name!r} in {where} under {kaggle_input(environ)}"
        )
    return matches[0]


def config_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """$EEDI_CONFIG, else the eedi-kit.toml of an attached code dataset, else None (defaults)."""
    environ = os.environ if environ is None else environ
    if environ.get(CONFIG_VARIABLE):
        return Path(environ[CONFIG_VARIABLE])
    found = [
        f / CONFIG_FILE_NAME for f in _input_folders(environ) if (f / CONFIG_FILE_NAME).is_file()
    ]
    if len(found) > 1:
        raise FileExistsError(f"several {CONFIG_FILE_NAME} in the inputs: {found}; attach one")
    return found[0] if found else None
