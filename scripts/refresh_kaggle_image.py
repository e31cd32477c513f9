"""Refresh the declared Kaggle images (eedi_utils/kaggle/image-gpu.json, image-cpu.json) from
their sources.

    python scripts/refresh_kaggle_image.py                     # docker-python's main, via GitHub
    python scripts/refresh_kaggle_image.py --ref v170-GPU      # a release tag of docker-python
    python scripts/refresh_kaggle_image.py --accelerator cpu   # the CPU image only
    python scripts/refresh_kaggle_image.py --git Kaggle/docker-python=../docker-python/.git \
        --git googlecolab/backend-info=../backend-info/.git  # from local clones, offline

Kaggle/docker-python's `Dockerfile.tmpl`, rendered for an image, names the Colab runtime it
builds on (`runtime:release-colab-external-images_<YYYYMMDD>-...` for the GPU image,
`cpu-runtime:...` for the CPU one) and adds `kaggle_requirements.txt`; googlecolab/backend-info
records those runtimes' `pip freeze` and os-info (`pip-freeze.gpu.txt` and `os-info-gpu.txt`,
`pip-freeze.txt` and `os-info.txt`). The freeze taken is the last one committed on or before the
base tag's day, and the os-info of the same commit. What follows from the four files
(eedi_utils.kaggle.image.declare: each package's version, what Kaggle's layer changed) is
written with their repositories, commits and dates; the files themselves are not kept. Both
images are read at the same docker-python commit. The wheel-set builder, the tests and the
offline rehearsal read the images from those declarations.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eedi_utils.kaggle.image import (  # noqa: E402
    ACCELERATORS,
    BACKEND_INFO,
    DOCKER_PYTHON,
    REQUIREMENTS_FILE,
    TEMPLATE_FILE,
    base_image_tag,
    declare,
    render_template,
    tag_day,
)


@dataclass(frozen=True)
class Commit:
    sha: str
    date: str


class GitHub:
    """The public GitHub API (commit look-up) and raw files."""

    def __init__(self, opener: Callable = urllib.request.urlopen) -> None:
        self.opener = opener

    def _get(self, url: str) -> bytes:
        with self.opener(url, timeout=60) as response:
            return response.read()

    def commit(self, repo: str, ref: str, path: str = "", until: str = "") -> Commit:
        query = f"sha={ref}&per_page=1" + (f"&path={path}" if path else "")
        query += f"&until={until}" if until else ""
        found = json.loads(self._get(f"https://api.github.com/repos/{repo}/commits?{query}"))
        if not found:
            raise SystemExit(f"no commit of {repo} at {ref} {path} until {until}")
        return Commit(found[0]["sha"], found[0]["commit"]["committer"]["date"])

    def read(self, repo: str, sha: str, path: str) -> str:
        return self._get(f"https://raw.githubusercontent.com/{repo}/{sha}/{path}").decode()


class LocalGit:
    """A local clone (or bare git directory) of the repository."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir

    def _git(self, *args: str) -> str:
        command = ["git", f"--git-dir={self.git_dir}", *args]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout

    def commit(self, repo: str, ref: str, path: str = "", until: str = "") -> Commit:
        args = ["log", "-1", "--format=%H %cI", *([f"--until={until}"] if until else []), ref]
        line = self._git(*args, *(["--", path] if path else [])).strip()
        if not line:
            raise SystemExit(f"no commit of {repo} at {ref} {path} until {until}")
        sha, when = line.split()
        return Commit(sha, when)

    def read(self, repo: str, sha: str, path: str) -> str:
        return self._git("show", f"{sha}:{path}")


def refresh(
    docker_python, backend_info, ref: str, kaggle: Commit, image: str, target: Path
) -> dict:
    """Write the declaration of the image ('gpu' or 'cpu') that follows from the sources, with
    docker-python at `kaggle` (what `ref` named), into `target`; returns it."""
    files = ACCELERATORS[image]
    template = docker_python.read(DOCKER_PYTHON, kaggle.sha, TEMPLATE_FILE)
    day = tag_day(base_image_tag(render_template(template, image), image))
    until = f"{day.isoformat()}T23:59:59Z"
    colab = backend_info.commit(BACKEND_INFO, "main", files.freeze_file, until)
    declared = declare(
        image=image,
        freeze=backend_info.read(BACKEND_INFO, colab.sha, files.freeze_file),
        requirements=docker_python.read(DOCKER_PYTHON, kaggle.sha, REQUIREMENTS_FILE),
        template=template,
        os_info=backend_info.read(BACKEND_INFO, colab.sha, files.os_info_file),
    )
    sources = {
        DOCKER_PYTHON: {"ref": ref, "commit": kaggle.sha, "date": kaggle.date,
                        "files": [TEMPLATE_FILE, REQUIREMENTS_FILE]},
        BACKEND_INFO: {"commit": colab.sha, "date": colab.date, "until": day.isoformat(),
                       "files": [files.freeze_file, files.os_info_file]},
    }  # fmt: skip
    declaration = {
        "about": f"Kaggle's {image.upper()} notebook image as its public sources declare it; "
        "written by scripts/refresh_kaggle_image.py, do not edit",
        "refreshed": date.today().isoformat(),
        "sources": sources,
        **declared,
    }
    target.write_text(json.dumps(declaration, indent=1) + "\n", encoding="utf-8")
    return declaration


def refresh_all(
    docker_python, backend_info, ref: str, images: list[str], target_dir: Path
) -> list[dict]:
    """Refresh each image (image-<name>.json in `target_dir`) at the one docker-python commit
    `ref` names now (a branch resolved once: both images of the same template)."""
    kaggle = docker_python.commit(DOCKER_PYTHON, ref)
    target_dir.mkdir(parents=True, exist_ok=True)
    return [
        refresh(docker_python, backend_info, ref, kaggle, image, target_dir / f"image-{image}.json")
        for image in images
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="main", help="Kaggle/docker-python branch, tag or commit")
    parser.add_argument(
        "--accelerator",
        choices=[*ACCELERATORS, "both"],
        default="both",
        help="which image to declare (default: both)",
    )
    parser.add_argument(
        "--git",
        action="append",
        default=[],
        metavar="OWNER/NAME=GIT_DIR",
        help="read that repository from a local clone instead of GitHub",
    )
    parser.add_argument(
        "--target-dir",
        type=Path,
        default=ACCELERATORS["gpu"].image_file.parent,
        help="where image-gpu.json and image-cpu.json are written (default: the package's)",
    )
    args = parser.parse_args(argv)
    local = dict(item.split("=", 1) for item in args.git)
    unknown = set(local) - {DOCKER_PYTHON, BACKEND_INFO}
    if unknown:
        parser.error(f"--git takes {DOCKER_PYTHON} or {BACKEND_INFO}, not {sorted(unknown)}")
    source = {repo: LocalGit(Path(local[repo])) if repo in local else GitHub() for repo in
              (DOCKER_PYTHON, BACKEND_INFO)}  # fmt: skip
    images = list(ACCELERATORS) if args.accelerator == "both" else [args.accelerator]
    written = refresh_all(
        source[DOCKER_PYTHON], source[BACKEND_INFO], args.ref, images, args.target_dir
    )
    for declared in written:
        summary = {key: declared[key] for key in ("accelerator", "base_image", "python", "sources")}
        print(json.dumps(summary, indent=2))
        target = args.target_dir / f"image-{declared['accelerator']}.json"
        print(f"{len(declared['packages'])} packages written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
