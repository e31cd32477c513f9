"""Where inputs come from and where outputs go, locally and on Kaggle."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

COMPETITION = "eedi-mining-misconceptions-in-mathematics"
KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")
DATA_DIR_VARIABLE = "EEDI_DATA_DIR"
RERUN_VARIABLE = "KAGGLE_IS_COMPETITION_RERUN"


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


def resolve_data_dir(
    explicit: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    kaggle_input: Path = KAGGLE_INPUT,
) -> DataSource:
    """First of: `explicit`, $EEDI_DATA_DIR, the Kaggle competition input, the bundled sample.

    A folder that is named explicitly (argument or variable) but missing is an error, never a
    silent fall-back to other data.
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
    kaggle = kaggle_input / COMPETITION
    if kaggle.is_dir():
        return DataSource(kaggle, "Kaggle competition input")
    return DataSource(sample_dir(), "bundled sample")


def is_competition_rerun(environ: Mapping[str, str] | None = None) -> bool:
    """True only in Kaggle's scoring rerun, where the hidden test replaces test.csv."""
    environ = os.environ if environ is None else environ
    return bool(environ.get(RERUN_VARIABLE))


def output_dir(working: Path = KAGGLE_WORKING) -> Path:
    """/kaggle/working on Kaggle, else the current folder."""
    return working if working.is_dir() else Path.cwd()
