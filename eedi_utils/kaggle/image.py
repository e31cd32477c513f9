"""Kaggle's notebook images, GPU and CPU, as declared package lists derived from their public
sources.

Kaggle/docker-python's `Dockerfile.tmpl` is one Go template for both images: rendered for the
GPU image it starts from Colab's `runtime`, for the CPU image from Colab's `cpu-runtime`, and a
few `{{ if eq .Accelerator "gpu" }}` blocks (pycuda, CUDA paths) are the GPU image's only. Each
runtime's `pip freeze` and os-info are recorded in googlecolab/backend-info (`pip-freeze.gpu.txt`
and `os-info-gpu.txt` for the GPU runtime, `pip-freeze.txt` and `os-info.txt` for the CPU one).
Kaggle installs `kaggle_requirements.txt` over the base with `uv pip install` (no `--upgrade`:
what the base has and satisfies stays) and then force-reinstalls a few pins (protobuf).
scripts/refresh_kaggle_image.py reads those files at their commits and writes what follows from
them, `image-gpu.json` and `image-cpu.json` beside this module: each package's version, what
Kaggle's layer changed and why, the sources' commits and dates. A package the sources give no
version for (added or force-reinstalled without `==`) is there at an unknown version, and meets
only a requirement that asks for no particular version.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field, replace
from datetime import date
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

DOCKER_PYTHON = "Kaggle/docker-python"
BACKEND_INFO = "googlecolab/backend-info"
TEMPLATE_FILE = "Dockerfile.tmpl"
REQUIREMENTS_FILE = "kaggle_requirements.txt"


@dataclass(frozen=True)
class Accelerator:
    """What tells one of Kaggle's images from the other in the sources."""

    name: str
    """'gpu' or 'cpu': the image's name in this kit (image-<name>.json)."""
    template_value: str
    """`.Accelerator` when Dockerfile.tmpl is rendered for this image (docker-python's `build`
    script passes --ACCELERATOR=gpu with --gpu, else none)."""
    base_runtime: str
    """The Colab image it starts from: us-docker.pkg.dev/colab-images/public/<base_runtime>."""
    freeze_file: str
    os_info_file: str

    @property
    def image_file(self) -> Path:
        """The declaration scripts/refresh_kaggle_image.py writes (package data)."""
        return Path(str(resources.files("eedi_utils.kaggle") / f"image-{self.name}.json"))


ACCELERATORS = {
    "gpu": Accelerator("gpu", "gpu", "runtime", "pip-freeze.gpu.txt", "os-info-gpu.txt"),
    "cpu": Accelerator("cpu", "none", "cpu-runtime", "pip-freeze.txt", "os-info.txt"),
}
"""Kaggle's two notebook images, the GPU one first (the kit's default image)."""
IMAGE_FILE = ACCELERATORS["gpu"].image_file
"""The GPU image's declaration: what KaggleImage.load() reads unless told otherwise."""
PIP_COMMAND = re.compile(r"(?:uv )?pip (install|uninstall)\b(.*?)(?:&&|;|$)", re.MULTILINE)


def accelerator(name: str) -> Accelerator:
    """ACCELERATORS[name], with the known names in the error."""
    if name not in ACCELERATORS:
        raise ValueError(f"unknown accelerator {name!r}; known: {', '.join(ACCELERATORS)}")
    return ACCELERATORS[name]


TEMPLATE_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
IF_ACCELERATOR = re.compile(r'if\s+eq\s+\.Accelerator\s+"([^"]*)"')


def render_template(template: str, image: str) -> str:
    """Dockerfile.tmpl rendered for `image` ('gpu' or 'cpu') as Go's text/template would: the
    text of each `{{ if eq .Accelerator "X" }} ... {{ else }} ... {{ end }}` branch that holds
    (nested ones too), the actions themselves gone. Those three are all the template uses; any
    other action is refused rather than guessed at."""
    value = accelerator(image).template_value
    rendered: list[str] = []
    branches: list[bool] = []  # per open `if`: whether the branch being read holds
    position = 0
    for action in TEMPLATE_ACTION.finditer(template):
        if all(branches):
            rendered.append(template[position : action.start()])
        position = action.end()
        words = action.group(1).strip()
        line = template.count("\n", 0, action.start()) + 1
        condition = IF_ACCELERATOR.fullmatch(words)
        if condition:
            branches.append(condition.group(1) == value)
        elif words == "else" and branches:
            branches[-1] = not branches[-1]
        elif words == "end" and branches:
            branches.pop()
        else:
            raise ValueError(
                f"{TEMPLATE_FILE} line {line}: {action.group(0)!r} is not a construct this "
                'renderer knows (`if eq .Accelerator "..."`, `else`, `end`)'
            )
    if branches:
        raise ValueError(f"{TEMPLATE_FILE}: {len(branches)} `if` left without `end`")
    rendered.append(template[position:])
    text = "".join(rendered)
    if "{{" in text or "}}" in text:
        raise ValueError(f"{TEMPLATE_FILE}: an unclosed '{{{{' or a stray '}}}}'")
    return text


def base_image_tag(dockerfile: str, image: str) -> str:
    """The Colab runtime tag the image is built from: the one `FROM .../<runtime>:<tag>` line of
    Dockerfile.tmpl rendered for it (render_template)."""
    runtime = accelerator(image).base_runtime
    froms = re.findall(r"^FROM .*$", dockerfile, re.MULTILINE)
    pattern = rf"FROM \S+/{re.escape(runtime)}:(release-colab\S*?_\d{{8}}\S*)"
    found = re.fullmatch(pattern, froms[0].strip()) if len(froms) == 1 else None
    if found is None:
        raise ValueError(
            f"the {image.upper()} image's {TEMPLATE_FILE}, rendered, should have one "
            f"`FROM .../{runtime}:<tag>` line, not {froms}"
        )
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
        raise ValueError("no 'Python X.Y.Z' line in the os-info file")
    return found.group(1)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def parse_freeze(text: str) -> dict[str, str | None]:
    """name -> version of a `pip freeze`: a `name==version` line's, or the version in the wheel
    file name of a `name @ <url>/<file>.whl` line (the CPU runtime's torch is
    `torch @ https://download.pytorch.org/whl/cpu/torch-2.10.0%2Bcpu-cp312-...whl`); None for
    another `name @ url` (a git URL, a source archive), which states no version."""
    packages: dict[str, str | None] = {}
    for line in _lines(text):
        requirement = Requirement(line)
        pins = [s.version for s in requirement.specifier if s.operator == "=="]
        name = canonicalize_name(requirement.name)
        packages[name] = pins[0] if pins else _wheel_url_version(name, requirement.url)
    return packages


def _wheel_url_version(name: str, url: str | None) -> str | None:
    """The version in the file name of a wheel URL of `name` (PEP 427), else None."""
    filename = unquote(urlsplit(url or "").path.rsplit("/", 1)[-1])
    if not filename.endswith(".whl"):
        return None
    try:
        wheel_name, version, _, _ = parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion):
        return None
    return str(version) if wheel_name == name else None


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


def apply_template(
    packages: dict[str, str | None], dockerfile: str, changes: dict[str, str]
) -> None:
    """The Dockerfile's own pip installs and uninstalls after the requirements file (of
    Dockerfile.tmpl rendered for the image: render_template)."""
    for command, arguments in PIP_COMMAND.findall(dockerfile.replace("\\\n", " ")):
        for requirement in _requirements(arguments):
            name = canonicalize_name(requirement.name)
            if command == "uninstall":
                if name in packages:
                    changes[name] = f"{TEMPLATE_FILE}: uninstalled ({packages.pop(name)} -> absent)"
                continue
            force = "--force-reinstall" in arguments
            _install(packages, requirement, force, changes, f"{TEMPLATE_FILE}")


def declare(image: str, freeze: str, requirements: str, template: str, os_info: str) -> dict:
    """The image ('gpu' or 'cpu') that follows from its sources, in the order Dockerfile.tmpl
    rendered for it builds it: the base's freeze, kaggle_requirements.txt, then the
    Dockerfile's later installs (the GPU image's blocks only in the GPU image)."""
    dockerfile = render_template(template, image)
    packages = parse_freeze(freeze)
    changes: dict[str, str] = {}
    for line in _lines(requirements):
        try:
            requirement = Requirement(line)
        except InvalidRequirement:  # git+https://... lines name no distribution
            continue
        _install(packages, requirement, False, changes, REQUIREMENTS_FILE)
    apply_template(packages, dockerfile, changes)
    return {
        "accelerator": image,
        "base_image": base_image_tag(dockerfile, image),
        "python": python_version(os_info),
        "changed_by_kaggle": dict(sorted(changes.items())),
        "packages": dict(sorted(packages.items())),
    }


@dataclass(frozen=True)
class KaggleImage:
    """The packages of one of Kaggle's images: name -> version (None: there, version unknown)."""

    python: str
    packages: dict[str, str | None] = field(repr=False)
    base_image: str = ""
    accelerator: str = ""
    """'gpu' or 'cpu' for a declared image; '' for one made up (tests)."""

    @classmethod
    def load(cls, path: Path = IMAGE_FILE) -> KaggleImage:
        """A declared image (by default the GPU one, image-gpu.json; written by
        scripts/refresh_kaggle_image.py)."""
        declared = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            declared["python"],
            declared["packages"],
            declared["base_image"],
            declared["accelerator"],
        )

    @classmethod
    def declared(cls, image: str) -> KaggleImage:
        """Kaggle's GPU ('gpu') or CPU ('cpu') image as the kit declares it."""
        return cls.load(accelerator(image).image_file)

    @property
    def label(self) -> str:
        """'the GPU image', 'the CPU image' ('the image' for one made up)."""
        return f"the {self.accelerator.upper()} image" if self.accelerator else "the image"

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
        """'click 8.3.3 in the GPU image', 'not in the CPU image', ..."""
        if not self.has(name):
            return f"not in {self.label}"
        version = self.version(name)
        return f"{name} {version or '(version unknown)'} in {self.label}"


def declared_images() -> list[KaggleImage]:
    """Kaggle's images as the kit declares them, the GPU one first: every kernel installs the
    one wheels dataset, the CPU kernel on the CPU image and the others on the GPU image."""
    return [KaggleImage.declared(name) for name in ACCELERATORS]
