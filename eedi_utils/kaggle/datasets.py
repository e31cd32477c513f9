"""Folders to upload as Kaggle datasets: the code wheel, offline wheels, models, data."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from eedi_utils.config import KitConfig
from eedi_utils.inputs import CONFIG_FILE_NAME
from eedi_utils.kaggle.closure import Wheel, applies, check_installs, read_wheels
from eedi_utils.kaggle.image import KaggleImage, declared_images

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


def release_here(name: str) -> str | None:
    """The release of `name` installed here, without a local label (+cpu is this machine's
    build, not a release); None when it is not installed."""
    try:
        return Version(metadata.version(name)).public
    except metadata.PackageNotFoundError:
        return None


def pinned(requirements: Sequence[str]) -> list[str]:
    """A bare name becomes name==<version installed here>; anything with a specifier stays."""
    pins = []
    for requirement in requirements:
        if BARE_NAME.fullmatch(requirement):
            release = release_here(requirement)
            if release is None:
                raise ValueError(
                    f"{requirement} is not installed here, so it has no version to pin: "
                    "give one in [kaggle] wheel_requirements, e.g. 'name==1.2.3'"
                )
            requirement = f"{requirement}=={release}"
        pins.append(requirement)
    return pins


KIT = "eedi-kit"
KIT_EXTRAS = ("default-model", "cpu")
"""The extras the bootstrap installs the kit with (notebooks/kaggle_bootstrap.py and
notebooks/wheels.py say the same): the bundled model, and the CPU runtimes of an exported model
folder (OpenVINO, ONNX Runtime), so any kernel loads one, the CPU kernel above all."""
WHEEL_SET_FILE = "wheel-set.json"
"""What the wheels dataset ships and why, what it leaves to Kaggle's images, and which images
it was checked against."""
CONSTRAINTS_FILE = "constraints.txt"
"""The shipped pins: the wheels kernel resolves vLLM's set under them (notebooks/wheels.py)."""


def kit_requirements(project: Path, extras: Sequence[str] = KIT_EXTRAS) -> list[str]:
    """The kit's own requirements with these extras, from its pyproject.toml."""
    declared = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    optional = declared.get("optional-dependencies", {})
    return [*declared["dependencies"], *(r for extra in extras for r in optional[extra])]


def download_command(
    folder: Path, requirements: Sequence[str], python_version: str, platforms: Sequence[str]
) -> list[str]:
    """pip download arguments for wheels only, for Kaggle's Python and platform, no deps."""
    args = ["download", "--only-binary=:all:", "--no-deps", "--dest", str(folder)]
    args += ["--python-version", python_version, "--implementation", "cp"]
    for platform in platforms:
        args += ["--platform", platform]
    return args + list(requirements)


@dataclass
class WheelSet:
    """The wheels shipped (name -> wheel) and the requirements left to the images (name -> the
    images' version)."""

    shipped: dict[str, Wheel] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)
    from_image: dict[str, str] = field(default_factory=dict)

    def record(self, folder: Path, images: Sequence[KaggleImage]) -> Path:
        """wheel-set.json (the images it was checked against, each shipped wheel with the
        reason, each name left to the images) and constraints.txt (the shipped pins)."""
        path = folder / WHEEL_SET_FILE
        summary = {
            "checked_against": [
                {"image": i.accelerator, "base_image": i.base_image, "python": i.python}
                for i in images
            ],
            "python": shared_python(images),
            "shipped": {
                f"{name}=={wheel.version}": self.why[name]
                for name, wheel in sorted(self.shipped.items())
            },
            "left_to_the_image": dict(sorted(self.from_image.items())),
        }
        path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        pins = [f"{name}=={wheel.version}" for name, wheel in sorted(self.shipped.items())]
        (folder / CONSTRAINTS_FILE).write_text("\n".join(pins) + "\n", encoding="utf-8")
        return path


def _choice(name: str, requirements: Sequence[Requirement]) -> str:
    """The pin to download: the release installed here when it meets every requirement (Kaggle
    runs what the tests ran), else the newest pip finds that meets them."""
    specifier = SpecifierSet()
    for requirement in requirements:
        specifier &= requirement.specifier
    here = release_here(name)
    if here is not None and specifier.contains(here, prereleases=True):
        return f"{name}=={here}"
    return f"{name}{specifier}"


def shared_python(images: Sequence[KaggleImage]) -> str:
    """The Python every image runs: one wheel set is downloaded for one Python, its markers
    read for it, so images that differ in it cannot share one."""
    pythons = {image.python for image in images}
    if len(pythons) != 1:
        described = ", ".join(f"{image.label} {image.python}" for image in images) or "none"
        raise ValueError(f"one wheel set needs one Python on every image; the images: {described}")
    return pythons.pop()


def _versions_in(name: str, images: Sequence[KaggleImage]) -> str:
    """The images' version of `name`: '2.0.2', or '2.10.0+cu128 in the GPU image, 2.10.0+cpu in
    the CPU image' where they differ."""
    versions = [image.version(name) or "version unknown" for image in images]
    if len(set(versions)) == 1:
        return versions[0]
    return ", ".join(f"{v} in {image.label}" for v, image in zip(versions, images))


def _describe(name: str, images: Sequence[KaggleImage]) -> str:
    """What the images have of `name`, images alike said once: 'click 8.3.3 in the GPU image
    and the CPU image', 'not in the CPU image'."""
    alike: dict[str, list[str]] = {}  # what an image has -> the images that have it
    for image in images:
        has = image.describe(name).removesuffix(f"in {image.label}")
        alike.setdefault(has, []).append(image.label)
    return ", ".join(f"{has}in {' and '.join(labels)}" for has, labels in alike.items())


def _download(pins: Sequence[str], folder: Path, python_minor: str, platforms, options) -> dict:
    """name -> wheel of each pin, downloaded without dependencies into `folder`."""
    _pip([*download_command(folder, sorted(pins), python_minor, platforms), *options])
    present = read_wheels([folder])
    names = {canonicalize_name(Requirement(pin).name): pin for pin in pins}
    missing = [pin for name, pin in names.items() if name not in present]
    if missing:
        raise ValueError(f"pip download left no wheel for {missing} in {folder}")
    return {name: present[name] for name in names}


def _walk_key(name: str, wheel_set: WheelSet, images: Sequence[KaggleImage]) -> tuple[str, str]:
    shipped = wheel_set.shipped.get(name)
    return (name, str(shipped.version) if shipped else _versions_in(name, images))


def resolve_wheel_set(
    roots: Sequence[str],
    images: Sequence[KaggleImage],
    folder: Path,
    platforms: Sequence[str],
    pip_options: Sequence[str] = (),
) -> WheelSet:
    """Download, without dependencies, every wheel the roots need that one of Kaggle's images
    lacks or has at a version some requirement refuses, walking each downloaded wheel's
    requirements (markers evaluated for the images' Python on Linux x86_64) until nothing more
    is needed. A name is left to the images only when every image meets every requirement of
    it; a shipped wheel replaces the copy of every image (the bootstrap pins each wheel), so one
    version runs on every kernel. Extras asked of a package left to the images are walked on the
    metadata of each image's version."""
    images = list(images)
    shared_python(images)  # refuses images that differ in it
    environment = images[0].marker_environment()
    python_minor = images[0].python_minor

    def met_by_images(requirement: Requirement) -> bool:
        return all(image.satisfies(requirement) for image in images)

    asked: dict[str, list[tuple[Requirement, str]]] = {}
    extras: dict[str, set[str]] = {}
    walked: dict[tuple[str, str], frozenset[str]] = {}  # (name, version) -> extras walked
    wheel_set = WheelSet()

    def need(requirement: Requirement, requirer: str) -> None:
        name = canonicalize_name(requirement.name)
        asked.setdefault(name, []).append((requirement, requirer))
        extras.setdefault(name, set()).update(requirement.extras)

    def walk(wheel: Wheel, requirer: str, skip_plain: bool = False) -> None:
        key = _walk_key(wheel.name, wheel_set, images)
        asked_extras = walked[key] = frozenset(extras[wheel.name])
        plain = set(map(str, wheel.needs((), environment))) if skip_plain else set()
        for requirement in wheel.needs(asked_extras, environment):
            if str(requirement) not in plain:  # the image's own needs are the image's business
                need(requirement, requirer)

    for root in map(Requirement, roots):
        if applies(root, environment):
            need(root, KIT)
    while True:
        wanted: dict[str, str] = {}
        for name, placed in asked.items():
            requirements = [requirement for requirement, _ in placed]
            if name in wheel_set.shipped:
                shipped = wheel_set.shipped[name].version
                refused = [f"{r} ({who})" for r, who in placed
                           if not r.specifier.contains(shipped, prereleases=True)]  # fmt: skip
                if refused:
                    raise ValueError(
                        f"{name} {shipped} was chosen for the wheel set, but "
                        + ", ".join(refused)
                        + ": pin a version that meets all of them in [kaggle] wheel_requirements"
                    )
            elif all(met_by_images(r) for r in requirements):
                wheel_set.from_image[name] = _versions_in(name, images)
            else:
                wanted[name] = _choice(name, requirements)
                refused, who = next((r, w) for r, w in placed if not met_by_images(r))
                wanted_version = f"{refused.name}{refused.specifier}"
                short = [image for image in images if not image.satisfies(refused)]
                wheel_set.why[name] = f"{who} requires {wanted_version}; {_describe(name, short)}"
                wheel_set.from_image.pop(name, None)
        if wanted:
            wheel_set.shipped.update(
                _download(list(wanted.values()), folder, python_minor, platforms, pip_options)
            )
        # a shipped wheel is walked once, and again when more extras are asked of it; an image
        # package only when extras are asked of it
        pending = [
            name
            for name in [*wheel_set.shipped, *wheel_set.from_image]
            if (name in wheel_set.shipped or extras.get(name))
            and walked.get(_walk_key(name, wheel_set, images)) != frozenset(extras.get(name, ()))
        ]
        if not wanted and not pending:
            return wheel_set
        for name in pending:
            if name in wheel_set.shipped:
                wheel = wheel_set.shipped[name]
                walk(wheel, f"{wheel.name} {wheel.version}")
                continue
            unknown = [image.label for image in images if image.version(name) is None]
            if unknown:
                raise ValueError(
                    f"extras {sorted(extras[name])} of {name} are asked for, and "
                    f"{' and '.join(unknown)} has {name} at a version its sources do not give: "
                    f"pin {name} in [kaggle] wheel_requirements to ship it"
                )
            holders: dict[str, list[str]] = {}  # release -> the images that have it
            for image in images:
                holders.setdefault(Version(image.version(name)).public, []).append(image.label)
            for release, labels in sorted(holders.items()):
                with tempfile.TemporaryDirectory() as scratch:  # metadata only, not shipped
                    pin = f"{name}=={release}"
                    got = _download([pin], Path(scratch), python_minor, platforms, pip_options)
                    requirer = f"{name} {release} in {' and '.join(labels)}"
                    walk(got[name], requirer, skip_plain=True)


def build_wheels_dataset(
    folder: Path,
    roots: Sequence[str],
    images: Sequence[KaggleImage],
    platforms: Sequence[str],
    pip_options: Sequence[str] = (),
) -> Path:
    """The wheels the kernels install offline with `pip install --no-index`: the closure of
    `roots` over Kaggle's images (resolve_wheel_set), checked on each image, with wheel-set.json
    beside it. `folder` must be new or empty: a wheel left from another build would be shipped
    too."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise ValueError(f"{folder} is not empty: the wheel set is built into an empty folder")
    wheel_set = resolve_wheel_set(roots, images, folder, platforms, pip_options)
    check_installs(read_wheels([folder]), images, roots)
    wheel_set.record(folder, images)
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
        roots = [*kit_requirements(project), *pinned(kaggle.wheel_requirements)]
        return build_wheels_dataset(folder, roots, declared_images(), kaggle.platforms)
    if kind == "model":
        return build_folder_dataset(folder, [Path(m) for m in config.retrieval.models])
    if kind == "data":
        return build_folder_dataset(folder, [Path(f) for f in config.train.extra_train_files])
    raise ValueError(f"unknown dataset kind {kind!r}; known: {', '.join(DATASET_KINDS)}")
