"""Where inputs come from and where outputs go, locally and on Kaggle."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

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


LAYOUTS = {
    "competition": "competitions/*",
    "dataset": "datasets/*/*",
    "notebook": "notebooks/*/*",
    "model": "models/*/*/*/*/*",
}
"""Where Kaggle mounts each kind of attached input under /kaggle/input (kaggle-facts: kernels
pushed with the CLI and public 2026 notebooks); before these, every input sat at
/kaggle/input/<slug>, and a Kaggle Model at /kaggle/input/<model>/<framework>/<variation>/<v>."""


@dataclass(frozen=True)
class AttachedInput:
    """One attached input: its kind (competition, dataset, notebook output, model; 'input' for
    the older flat layout), its slug (a model's: the model slug) and its root folder (a
    model's: the version folder)."""

    kind: str
    slug: str
    path: Path


def _older_layout(folder: Path) -> list[AttachedInput]:
    """An input at /kaggle/input/<slug>, and a Kaggle Model's version folders below it (its
    <framework>/<variation>/<digits> folders)."""
    versions = sorted(p for p in folder.glob("*/*/*") if p.is_dir() and p.name.isdigit())
    return [AttachedInput("input", folder.name, folder)] + [
        AttachedInput("model", folder.name, version) for version in versions
    ]


def attached_inputs(environ: Mapping[str, str] | None = None) -> list[AttachedInput]:
    """Every input attached to the kernel, in each layout Kaggle has used; a folder reached
    through two layouts (a link, a bind mount: the same file) is listed once, in the newer."""
    root = kaggle_input(environ)
    found = []
    for kind, pattern in LAYOUTS.items():
        for path in sorted(root.glob(pattern)):
            if path.is_dir():
                slug = path.parts[-4] if kind == "model" else path.name
                found.append(AttachedInput(kind, slug, path))
    newer = {pattern.split("/")[0] for pattern in LAYOUTS.values()}
    for folder in sorted(root.glob("*")):
        if folder.is_dir() and folder.name not in newer:
            found.extend(_older_layout(folder))
    return _unique(found, key=lambda attached: attached.path)


def _unique(items: list, key: Callable[[Any], Path]) -> list:
    """`items` less those whose path is the same file as an earlier one's (os.path.samefile:
    links and bind mounts of one folder)."""
    unique, seen = [], set()
    for item in items:
        stat = key(item).stat()
        if (stat.st_dev, stat.st_ino) not in seen:
            seen.add((stat.st_dev, stat.st_ino))
            unique.append(item)
    return unique


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


def _matches(name: str, inputs: list[AttachedInput]) -> list[tuple[AttachedInput, Path]]:
    """Entries called `name` at the top of an input, and Kaggle Models whose slug is `name`."""
    found = []
    for attached in inputs:
        if (attached.path / name).exists():
            found.append((attached, attached.path / name))
        elif attached.kind == "model" and attached.slug == name:
            found.append((attached, attached.path))
    return _unique(found, key=lambda match: match[1])


def resolve_input_path(
    path: str | Path, environ: Mapping[str, str] | None = None, dataset: str = ""
) -> Path:
    """`path` if it exists here, else the Kaggle input entry of the same name.

    This is what lets one config serve both places: `models = ["runs/minilm-ft"]` is the local
    folder, and on Kaggle the `minilm-ft` folder of the attached model dataset; a name that is
    a Kaggle Model's slug is that model's version folder. Entries inside the input whose slug is
    `dataset` come first; more than one match is an error that lists them, never a silent pick
    (a data dataset's `train.csv` beside the competition's); none is an error listing where it
    looked.
    """
    path = Path(path)
    if path.exists():
        return path
    inputs = attached_inputs(environ)
    found = _matches(path.name, inputs)
    preferred = [match for match in found if dataset and match[0].slug == dataset]
    matches = [match_path for _, match_path in preferred or found]
    if len(matches) > 1:
        listed = ", ".join(str(m) for m in matches)
        raise FileExistsError(f"{path.name!r} is in several Kaggle inputs: {listed}; name one")
    if not matches:
        where = f"dataset {dataset!r} nor any other" if dataset else "any dataset"
        tried = ", ".join(str(attached.path) for attached in inputs) or "no input attached"
        raise FileNotFoundError(
            f"{path} not found here, nor as {path.name!r} in {where} under "
            f"{kaggle_input(environ)} (looked in: {tried})"
        )
    return matches[0]


def config_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """$EEDI_CONFIG, else the eedi-kit.toml of an attached code dataset, else None (defaults)."""
    environ = os.environ if environ is None else environ
    if environ.get(CONFIG_VARIABLE):
        return Path(environ[CONFIG_VARIABLE])
    found = [path for _, path in _matches(CONFIG_FILE_NAME, attached_inputs(environ))]
    if len(found) > 1:
        raise FileExistsError(f"several {CONFIG_FILE_NAME} in the inputs: {found}; attach one")
    return found[0] if found else None
