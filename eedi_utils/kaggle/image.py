"""Kaggle's GPU notebook image as a declared package list, derived from its public sources.

Kaggle/docker-python's `Dockerfile.tmpl` starts from a Colab runtime, whose `pip freeze`
googlecolab/backend-info records, installs `kaggle_requirements.txt` with `uv pip install` (no
`--upgrade`: what the base has and satisfies stays) and then force-reinstalls a few pins
(protobuf). scripts/refresh_kaggle_image.py reads those files at their commits and writes what
follows from them, `image-gpu.json` beside this module: each package's version, what Kaggle's
layer changed and why, the sources' commits and dates. A package the sources give no version
for (added or force-reinstalled without `==`) is there at an unknown version, and meets only a
requirement that asks for no particular version.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field, replace
from datetime import date
from importlib import resources
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

DOCKER_PYTHON = "Kaggle/docker-python"
BACKEND_INFO = "googlecolab/backend-info"
TEMPLATE_FILE = "Dockerfile.tmpl"
REQUIREMENTS_FILE = "kaggle_requirements.txt"
FREEZE_FILE = "pip-freeze.gpu.txt"
OS_INFO_FILE = "os-info-gpu.txt"
IMAGE_FILE = Path(str(resources.files("eedi_utils.kaggle") / "image-gpu.json"))
GPU_BASE = re.compile(r"^FROM \S+/runtime:(release-colab\S*?_(\d{8})\S*)$", re.MULTILINE)
PIP_COMMAND = re.compile(r"(?:uv )?pip (install|uninstall)\b(.*?)(?:&&|;|$)", re.MULTILINE)


def base_image_tag(template: str) -> str:
    """The Colab runtime tag the GPU image is built from (its `FROM .../runtime:` line)."""
    found = GPU_BASE.search(template)
    if found is None:
        raise ValueError(f"no GPU `FROM .../runtime:<tag>` line in {TEMPLATE_FILE}")
    return found.group(1)


def tag_day(tag: str) -> date:
    """The day in a tag such as release-colab-external-images_20260514-060047_RC00."""
    day = re.search(r"_(\d{4})(\d{2})(\d{2})", tag)
    if day is None:
        raise ValueError(f"no date in image tag {tag!r}")
    return date(*(int(part) for part in day.groups()))


def python_version(os_info: str) -> str:
    """The Python version in backend-info's os-info file ('Python 3.12.13')."""
    found = re.search(r"^Python (\d+\.\d+\.\d+)", os_info, re.MULTILINE)
    if found is None:
        raise ValueError(f"no 'Python X.Y.Z' line in {OS_INFO_FILE}")
    return found.group(1)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def parse_freeze(text: str) -> dict[str, str | None]:
    """name -> version of a `pip freeze` (a `name @ url` line has no version it states)."""
    packages: dict[str, str | None] = {}
    for line in _lines(text):
        requirement = Requirement(line)
        pins = [s.version for s in requirement.specifier if s.operator == "=="]
        packages[canonicalize_name(requirement.name)] = pins[0] if pins else None
    return packages


def _install(
    packages: dict[str, str | None],
    requirement: Requirement,
    force: bool,
    changes: dict[str, str],
    where: str,
) -> None:
    """What `uv pip install` leaves: a satisfying installed version stays (unless forced); else
    an `==` pin is that version, anything else a version the sources do not give. (What uv's
    resolution of the new packages' own dependencies moved is not in the sources.)"""
    name = canonicalize_name(requirement.name)
    installed = packages.get(name, "absent")
    pins = [s.version for s in requirement.specifier if s.operator in ("==", "===")]
    if not force and installed not in ("absent", None) and _contains(requirement, installed):
        return  # satisfied: kept as it is (==0.10.0 keeps 0.10.0+cu128, PEP 440)
    packages[name] = pins[0] if pins else None
    if packages[name] != installed or force:
        before = "absent" if installed == "absent" else installed or "version unknown"
        after = packages[name] or "version unknown"
        changes[name] = f"{where}: {requirement} ({before} -> {after})"


def _contains(requirement: Requirement, version: str | None) -> bool:
    if version is None:
        return False
    try:
        return requirement.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


VALUED_OPTIONS = {
    *("-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url"),
    *("-f", "--find-links", "--python", "-p", "--target", "--prefix", "--index-strategy"),
    *("--python-version", "--python-platform"),
}
"""pip/uv options whose next word is a value, not a requirement."""


def _requirements(arguments: str) -> list[Requirement]:
    """The requirements named on a pip command line (options, their values, files and URLs
    left out)."""
    words = shlex.split(arguments.replace("\\\n", " "), comments=True)
    found, skip = [], False
    for word in words:
        if skip or word.startswith("-") or "/" in word or "://" in word:
            skip = word in VALUED_OPTIONS
            continue
        try:
            found.append(Requirement(word))
        except InvalidRequirement:
            continue
    return found


def apply_template(packages: dict[str, str | None], template: str, changes: dict[str, str]) -> None:
    """The Dockerfile's own pip installs and uninstalls after the requirements file."""
    for command, arguments in PIP_COMMAND.findall(template.replace("\\\n", " ")):
        for requirement in _requirements(arguments):
            name = canonicalize_name(requirement.name)
            if command == "uninstall":
                if name in packages:
                    changes[name] = f"{TEMPLATE_FILE}: uninstalled ({packages.pop(name)} -> absent)"
                continue
            force = "--force-reinstall" in arguments
            _install(packages, requirement, force, changes, f"{TEMPLATE_FILE}")


def declare(freeze: str, requirements: str, template: str, os_info: str) -> dict:
    """The image that follows from its sources, in the order Dockerfile.tmpl builds it: the
    base's freeze, kaggle_requirements.txt, then the Dockerfile's later installs."""
    packages = parse_freeze(freeze)
    changes: dict[str, str] = {}
    for line in _lines(requirements):
        try:
            requirement = Requirement(line)
        except InvalidRequirement:  # git+https://... lines name no distribution
            continue
        _install(packages, requirement, False, changes, REQUIREMENTS_FILE)
    apply_template(packages, template, changes)
    return {
        "base_image": base_image_tag(template),
        "python": python_version(os_info),
        "changed_by_kaggle": dict(sorted(changes.items())),
        "packages": dict(sorted(packages.items())),
    }


@dataclass(frozen=True)
class KaggleImage:
    """The packages of Kaggle's GPU image: name -> version (None: there, version unknown)."""

    python: str
    packages: dict[str, str | None] = field(repr=False)
    base_image: str = ""

    @classmethod
    def load(cls, path: Path = IMAGE_FILE) -> KaggleImage:
        """The declared image (image-gpu.json, written by scripts/refresh_kaggle_image.py)."""
        declared = json.loads(path.read_text(encoding="utf-8"))
        return cls(declared["python"], declared["packages"], declared["base_image"])

    def with_python(self, python: str) -> KaggleImage:
        """The same packages under another Python (the offline rehearsal runs this machine's)."""
        return replace(self, python=python)

    @property
    def python_minor(self) -> str:
        return ".".join(self.python.split(".")[:2])

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker values of the image: CPython on Linux x86_64."""
        return {
            "implementation_name": "cpython",
            "implementation_version": self.python,
            "os_name": "posix",
            "platform_machine": "x86_64",
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": self.python,
            "python_version": self.python_minor,
            "sys_platform": "linux",
        }

    def has(self, name: str) -> bool:
        return canonicalize_name(name) in self.packages

    def version(self, name: str) -> str | None:
        return self.packages.get(canonicalize_name(name))

    def satisfies(self, requirement: Requirement) -> bool:
        """True when the image's copy meets `requirement` (an unknown version meets only a
        requirement without a version specifier)."""
        name = canonicalize_name(requirement.name)
        if name not in self.packages:
            return False
        if not requirement.specifier:
            return True
        return _contains(requirement, self.packages[name])

    def describe(self, name: str) -> str:
        """'click 8.3.3 in the image', 'not in the image', ..."""
        if not self.has(name):
            return "not in the image"
        version = self.version(name)
        return f"{name} {version or '(version unknown)'} in the image"
