"""Whether a set of wheels installs offline on Kaggle's images: every requirement of every wheel,
markers evaluated for the image's Python on Linux x86_64, met by a wheel of the set or, where the
set has none of that name, by the image's copy; on each image in turn."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from eedi_utils.kaggle.image import KaggleImage


@dataclass(frozen=True)
class Wheel:
    """A wheel file's distribution name, version and declared requirements (its METADATA)."""

    path: Path
    name: str
    version: Version
    requires: tuple[Requirement, ...]

    @classmethod
    def read(cls, path: Path) -> Wheel:
        with zipfile.ZipFile(path) as archive:
            (member,) = [
                n
                for n in archive.namelist()
                if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
            ]
            meta = Parser().parsestr(archive.read(member).decode("utf-8"))
        requires = tuple(Requirement(r) for r in meta.get_all("Requires-Dist") or [])
        return cls(path, canonicalize_name(meta["Name"]), Version(meta["Version"]), requires)

    def needs(self, extras: Iterable[str], environment: dict[str, str]) -> list[Requirement]:
        """The requirements that apply on the image when these extras are asked for."""
        return [r for r in self.requires if applies(r, environment, extras)]


def applies(
    requirement: Requirement, environment: dict[str, str], extras: Iterable[str] = ()
) -> bool:
    """Whether `requirement`'s marker holds in `environment` with no extra or one of these."""
    return requirement.marker is None or any(
        requirement.marker.evaluate({**environment, "extra": extra}) for extra in ("", *extras)
    )


@dataclass(frozen=True)
class Unmet:
    """A requirement of a shipped wheel that neither the set nor the image meets."""

    requirer: str
    requirement: Requirement
    found: str

    def __str__(self) -> str:
        return f"{self.requirer} requires {self.requirement}: {self.found}"


def read_wheels(folders: Iterable[Path]) -> dict[str, Wheel]:
    """name -> wheel of every *.whl under the folders (the highest version when several)."""
    wheels: dict[str, Wheel] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*.whl")):
            wheel = Wheel.read(path)
            if wheel.name not in wheels or wheel.version > wheels[wheel.name].version:
                wheels[wheel.name] = wheel
    return wheels


def unmet_requirements(
    wheels: dict[str, Wheel], image: KaggleImage, roots: Sequence[str] = ()
) -> list[Unmet]:
    """Every requirement of the install command (`roots`, e.g. 'eedi-kit[default-model]') and
    of every wheel (with the extras asked of it) that the set and the image leave unmet. A wheel
    of the set replaces the image's copy of its name (the bootstrap pins it)."""
    environment = image.marker_environment()
    extras: dict[str, set[str]] = {name: set() for name in wheels}
    unmet: list[Unmet] = []
    for root in map(Requirement, roots):
        if not applies(root, environment):
            continue
        extras.setdefault(canonicalize_name(root.name), set()).update(root.extras)
        found = _meets(root, wheels, image)
        if found:
            unmet.append(Unmet("the install command", root, found))
    checked: set[tuple[str, frozenset[str]]] = set()
    while True:
        pending = [
            (name, frozenset(asked))
            for name, asked in extras.items()
            if name in wheels and (name, frozenset(asked)) not in checked
        ]
        if not pending:
            return sorted(set(unmet), key=str)
        for name, asked in pending:
            checked.add((name, asked))
            wheel = wheels[name]
            for requirement in wheel.needs(asked, environment):
                needed = canonicalize_name(requirement.name)
                extras.setdefault(needed, set()).update(requirement.extras)
                found = _meets(requirement, wheels, image)
                if found:
                    unmet.append(Unmet(f"{wheel.name} {wheel.version}", requirement, found))


def _meets(requirement: Requirement, wheels: dict[str, Wheel], image: KaggleImage) -> str:
    """'' when met, else what was found instead."""
    name = canonicalize_name(requirement.name)
    if name in wheels:
        shipped = wheels[name].version
        if requirement.specifier.contains(shipped, prereleases=True):
            return ""
        return f"the set ships {name} {shipped}"
    if image.satisfies(requirement):
        return ""
    return f"not shipped, and {image.describe(name)}"


def check_installs(
    wheels: dict[str, Wheel], images: Sequence[KaggleImage], roots: Sequence[str] = ()
) -> None:
    """ValueError naming each image the set would not install on and what it leaves unmet
    there (unmet_requirements on each image); nothing when it installs on all of them."""
    failures = []
    for image in images:
        unmet = unmet_requirements(wheels, image, roots)
        if unmet:
            tag = f" ({image.base_image})" if image.base_image else ""
            listed = "".join(f"\n  {u}" for u in unmet)
            failures.append(f"the wheel set would not install on {image.label}{tag}:{listed}")
    if failures:
        raise ValueError("\n".join(failures))
