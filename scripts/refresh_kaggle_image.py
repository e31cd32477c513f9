"""Refresh the declared Kaggle GPU image (eedi_utils/kaggle/image-gpu.json) from its sources.

    python scripts/refresh_kaggle_image.py                     # docker-python's main, via GitHub
    python scripts/refresh_kaggle_image.py --ref v170-GPU      # a release tag of docker-python
    python scripts/refresh_kaggle_image.py --git Kaggle/docker-python=../docker-python/.git \
        --git googlecolab/backend-info=../backend-info/.git  # from local clones, offline

Kaggle/docker-python's `Dockerfile.tmpl` names the Colab runtime it builds on
(`runtime:release-colab-external-images_<YYYYMMDD>-...`) and adds `kaggle_requirements.txt`;
googlecolab/backend-info records that runtime's `pip-freeze.gpu.txt` and `os-info-gpu.txt`. The
freeze taken is the last one committed on or before the base tag's day. What follows from the
four files (eedi_utils.kaggle.image.declare: each package's version, what Kaggle's layer changed)
is written with their repositories, commits and dates; the files themselves are not kept. The
wheel-set builder, the tests and the offline rehearsal read the image from that declaration.
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
    BACKEND_INFO,
    DOCKER_PYTHON,
    FREEZE_FILE,
    IMAGE_FILE,
    OS_INFO_FILE,
    REQUIREMENTS_FILE,
    TEMPLATE_FILE,
    base_image_tag,
    declare,
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


def refresh(docker_python, backend_info, ref: str, target: Path) -> dict:
    """Write the declaration that follows from the sources into `target`; returns it."""
    kaggle = docker_python.commit(DOCKER_PYTHON, ref)
    template = docker_python.read(DOCKER_PYTHON, kaggle.sha, TEMPLATE_FILE)
    day = tag_day(base_image_tag(template))
    colab = backend_info.commit(BACKEND_INFO, "main", FREEZE_FILE, f"{day.isoformat()}T23:59:59Z")
    declared = declare(
        freeze=backend_info.read(BACKEND_INFO, colab.sha, FREEZE_FILE),
        requirements=docker_python.read(DOCKER_PYTHON, kaggle.sha, REQUIREMENTS_FILE),
        template=template,
        os_info=backend_info.read(BACKEND_INFO, colab.sha, OS_INFO_FILE),
    )
    sources = {
        DOCKER_PYTHON: {"ref": ref, "commit": kaggle.sha, "date": kaggle.date,
                        "files": [TEMPLATE_FILE, REQUIREMENTS_FILE]},
        BACKEND_INFO: {"commit": colab.sha, "date": colab.date, "until": day.isoformat(),
                       "files": [FREEZE_FILE, OS_INFO_FILE]},
    }  # fmt: skip
    declaration = {
        "about": "Kaggle's GPU notebook image as its public sources declare it; written by "
        "scripts/refresh_kaggle_image.py, do not edit",
        "refreshed": date.today().isoformat(),
        "sources": sources,
        **declared,
    }
    target.write_text(json.dumps(declaration, indent=1) + "\n", encoding="utf-8")
    return declaration


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="main", help="Kaggle/docker-python branch, tag or commit")
    parser.add_argument(
        "--git",
        action="append",
        default=[],
        metavar="OWNER/NAME=GIT_DIR",
        help="read that repository from a local clone instead of GitHub",
    )
    parser.add_argument("--target", type=Path, default=IMAGE_FILE)
    args = parser.parse_args(argv)
    local = dict(item.split("=", 1) for item in args.git)
    unknown = set(local) - {DOCKER_PYTHON, BACKEND_INFO}
    if unknown:
        parser.error(f"--git takes {DOCKER_PYTHON} or {BACKEND_INFO}, not {sorted(unknown)}")
    source = {repo: LocalGit(Path(local[repo])) if repo in local else GitHub() for repo in
              (DOCKER_PYTHON, BACKEND_INFO)}  # fmt: skip
    declared = refresh(source[DOCKER_PYTHON], source[BACKEND_INFO], args.ref, args.target)
    summary = {key: declared[key] for key in ("base_image", "python", "sources")}
    print(json.dumps(summary, indent=2))
    print(f"{len(declared['packages'])} packages written to {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
