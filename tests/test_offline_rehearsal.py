"""Offline rehearsal: the built inference notebook runs in a Kaggle-like tree with no network.

The kernel's Python stands in for Kaggle's image: every library of this environment except
this package, which the notebook's first cell must install from the attached code dataset
with `pip install --no-index`. nbclient and the kernel run in a fresh network namespace
(`unshare -n`) where only loopback exists, so any reach for a hub or an index fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
from test_notebook import assert_valid_submission

from eedi_utils.inputs import COMPETITION, CONFIG_FILE_NAME
from eedi_utils.kaggle.datasets import BOOTSTRAP, build_folder_dataset
from eedi_utils.kaggle.kernels import build_notebook

PROJECT = Path(__file__).resolve().parents[1]
OFFLINE = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "offline"]


def network_can_be_cut() -> bool:
    try:
        return subprocess.run([*OFFLINE, "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


pytestmark = pytest.mark.skipif(
    not network_can_be_cut(), reason="needs `unshare -n` and `ip` (root or user namespaces)"
)


@pytest.fixture()
def kaggle_image(tmp_path: Path) -> Path:
    """A jupyter kernel named 'kaggle-image' whose Python has every library but eedi-kit."""
    farm = tmp_path / "image-site"
    farm.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(("eedi_kit", "__editable__")):
            (farm / entry.name).symlink_to(entry)
    venv = tmp_path / "image"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = (venv / "lib").glob("python*/site-packages")
    (site / "image.pth").write_text(f"{farm}\n")
    python = venv / "bin" / "python"
    missing = subprocess.run(
        [str(python), "-c", "import eedi_utils"], cwd=tmp_path, capture_output=True
    )
    assert missing.returncode != 0, "the image must not have the package before the notebook"
    spec = tmp_path / "jupyter" / "kernels" / "kaggle-image"
    spec.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "kaggle-image", "language": "python"})
    )
    return tmp_path / "jupyter"


@pytest.fixture()
def kaggle_tree(tmp_path: Path, sample: Path, tiny_model: Path, code_wheel: Path) -> Path:
    """/kaggle: the competition data, the code dataset (wheel + config), the model dataset."""
    root = tmp_path / "kaggle"
    inputs = root / "input"
    shutil.copytree(sample, inputs / "competitions" / COMPETITION)  # as the CLI mounts it
    code = inputs / "eedi-kit-code"
    code.mkdir(parents=True)
    shutil.copy(code_wheel, code)
    shutil.copy(PROJECT / "notebooks" / BOOTSTRAP, code)
    # The config names the model by a local path that does not exist on "Kaggle": the
    # notebook must find it by name in the model dataset.
    (code / CONFIG_FILE_NAME).write_text(
        '[retrieval]\nmodels = ["runs/minilm-ft"]\nshow_progress = false\n[evaluate]\nfolds = 3\n'
    )
    local_model = tmp_path / "runs" / "minilm-ft"
    shutil.copytree(tiny_model, local_model)
    build_folder_dataset(inputs / "eedi-kit-model", [local_model])
    (root / "working").mkdir()
    build_notebook(PROJECT / "notebooks" / "inference.py", root / "working" / "inference.ipynb")
    return root


def test_the_namespace_really_has_no_network() -> None:
    probe = "import socket; socket.create_connection(('151.101.0.223', 443), timeout=5)"
    result = subprocess.run([*OFFLINE, sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode != 0 and "unreachable" in result.stderr


@pytest.mark.parametrize("rerun", [False, True], ids=["commit", "competition-rerun"])
def test_inference_notebook_runs_offline_in_a_kaggle_tree(
    rerun: bool, kaggle_tree: Path, kaggle_image: Path, sample: Path
) -> None:
    working = kaggle_tree / "working"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("EEDI_DATA_DIR", "EEDI_CONFIG", "KAGGLE_IS_COMPETITION_RERUN", "VIRTUAL_ENV")
    }
    env.update(JUPYTER_PATH=str(kaggle_image), EEDI_KAGGLE_ROOT=str(kaggle_tree))
    env["KAGGLE_KERNEL_RUN_TYPE"] = "Batch"  # set by Kaggle in every kernel
    if rerun:
        env["KAGGLE_IS_COMPETITION_RERUN"] = "1"
    execute = Path(sys.executable).parent / "jupyter-execute"
    result = subprocess.run(
        [
            *OFFLINE,
            str(execute),
            "--kernel_name=kaggle-image",
            "--output=executed",
            "inference.ipynb",
        ],
        cwd=working,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    executed = nbformat.read(working / "executed.ipynb", as_version=4)
    printed = "".join(
        o.get("text", "")
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert re.search(r"Successfully installed .*eedi[-_]kit-", printed)  # the wheel, --no-index
    mounted = kaggle_tree / "input" / "competitions" / COMPETITION
    assert f"data: {mounted} (Kaggle competition input)" in printed
    assert ('"map@25"' in printed) is not rerun  # the CV report only on the commit run
    assert_valid_submission(working / "submission.csv", sample)
