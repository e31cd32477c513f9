"""Offline rehearsal: the built inference notebook runs in a Kaggle-like tree with no network.

The kernel's Python starts from one of Kaggle's declared images (eedi_utils/kaggle/image-gpu.json,
image-cpu.json, read from Kaggle/docker-python and googlecolab/backend-info): every package
the kit's closure touches, its dependencies and the Jupyter kernel, at the image's versions
(numpy 2.0.2, pandas 2.2.2, transformers 5.0.0, huggingface_hub 1.11.0, click 8.3.3, hf-xet
1.4.3, ipykernel 6.17.1, ...), installed from PyPI. The GPU kernel ranks with a torch model;
the CPU kernel (kernel-metadata/inference-cpu) with an OpenVINO export of it, as the efficiency
track's entry does. As near as this machine allows, it differs from Kaggle in:
- Python 3.11 here (3.12.13 there): the wheels are built for 3.11, markers read for 3.11;
- torch 2.13.0+cpu, this machine's, stands in for the images' 2.10.0+cu128 and 2.10.0+cpu (no
  build of 2.10 for 3.11 can be had here);
- the image's ~800 other packages (and those kaggle_requirements.txt adds at versions the lists
  do not give) are absent: an import of one of them fails here that would work on Kaggle.
The first cell installs the kit from the code dataset and the wheels dataset built by the kit's
own builder over both images (one dataset serves every kernel: what an image lacks, or has too
old), pinned, with `--no-index`. nbclient and the kernel run in a fresh network namespace
(`unshare -n`) where only loopback exists: any reach for a hub or an index fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement
from test_notebook import assert_valid_submission

from eedi_utils.cli import main as cli_main
from eedi_utils.inputs import COMPETITION, CONFIG_FILE_NAME
from eedi_utils.kaggle.datasets import (
    BOOTSTRAP,
    WHEEL_SET_FILE,
    build_folder_dataset,
    build_wheels_dataset,
    kit_requirements,
)
from eedi_utils.kaggle.image import KaggleImage, declared_images
from eedi_utils.kaggle.kernels import build_notebook
from eedi_utils.kaggle.settings import KaggleConfig

PROJECT = Path(__file__).resolve().parents[1]
OFFLINE = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "offline"]
THIS_PYTHON = ".".join(map(str, sys.version_info[:3]))
TORCH_FAMILY = re.compile(r"^(torch|torchvision|torchaudio|torchcodec|triton|nvidia-.*)$")
"""The image's CUDA stack: this machine's CPU torch stands in for it."""
KERNEL_RUNTIME = ["ipykernel"]
"""What Jupyter needs inside the kernel's Python (the image has it)."""


def network_can_be_cut() -> bool:
    try:
        return subprocess.run([*OFFLINE, "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


pytestmark = pytest.mark.skipif(
    not network_can_be_cut(), reason="needs `unshare -n` and `ip` (root or user namespaces)"
)


@pytest.fixture(scope="module")
def image(request) -> KaggleImage:
    """The declared image the kernel runs on ('gpu' or 'cpu': the test names it)."""
    return KaggleImage.declared(request.param).with_python(THIS_PYTHON)


@pytest.fixture(scope="module")
def wheels_dataset(tmp_path_factory) -> Path:
    """The wheels dataset as scripts/push_datasets.py builds it (the kit's closure over both
    declared images, real wheels from PyPI), for this machine's Python instead of Kaggle's."""
    folder = tmp_path_factory.mktemp("wheels") / "eedi-kit-wheels"
    images = [image.with_python(THIS_PYTHON) for image in declared_images()]
    return build_wheels_dataset(folder, kit_requirements(PROJECT), images, KaggleConfig().platforms)


def torch_entries() -> list[Path]:
    """This environment's torch: its packages and dist-info, to link into the image."""
    dist = metadata.distribution("torch")
    top = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
    return [Path(str(dist.locate_file(name))) for name in sorted(top)]


@pytest.fixture(scope="module")
def image_site(tmp_path_factory, image: KaggleImage, wheels_dataset: Path) -> Path:
    """site-packages of the declared image, as far as the kit reaches: the packages the wheel
    set left to the image and those it replaces, at the image's versions, with their own
    dependencies at the image's versions (the image list as constraints), and the kernel."""
    root = tmp_path_factory.mktemp(f"image-{image.accelerator}")
    subprocess.run([sys.executable, "-m", "venv", str(root / "base")], check=True)
    (site,) = (root / "base" / "lib").glob("python*/site-packages")
    for entry in torch_entries():
        (site / entry.name).symlink_to(entry)
    constraints = root / "image-constraints.txt"
    known = {name: v for name, v in image.packages.items() if v and not TORCH_FAMILY.match(name)}
    constraints.write_text("".join(f"{name}=={v}\n" for name, v in sorted(known.items())))
    wheel_set = json.loads((wheels_dataset / WHEEL_SET_FILE).read_text())
    shipped = [pin.split("==")[0] for pin in wheel_set["shipped"]]
    wanted = [*wheel_set["left_to_the_image"], *shipped, *KERNEL_RUNTIME]
    wanted = sorted({name for name in wanted if name in known})
    pip = [str(root / "base" / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    done = subprocess.run([*pip, "-c", str(constraints), *wanted], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return site


@pytest.fixture()
def kaggle_image(tmp_path_factory, image_site: Path, image: KaggleImage) -> Path:
    """A jupyter kernel named 'kaggle-image' whose Python is the declared image (a fresh one
    per test: the notebook installs into it)."""
    root = tmp_path_factory.mktemp("kernel")
    venv = root / "image"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = (venv / "lib").glob("python*/site-packages")
    (site / "image.pth").write_text(f"{image_site}\n")
    python = venv / "bin" / "python"
    probe = "import transformers, huggingface_hub, click; print(transformers.__version__, " \
        "huggingface_hub.__version__, click.__version__)"  # fmt: skip
    versions = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=root)
    expected = [image.version(n) for n in ("transformers", "huggingface-hub", "click")]
    assert versions.stdout.split() == expected, versions.stderr[-2000:]
    missing = subprocess.run(
        [str(python), "-c", "import eedi_utils"], cwd=root, capture_output=True
    )
    assert missing.returncode != 0, "the image must not have the kit before the notebook"
    spec = root / "jupyter" / "kernels" / "kaggle-image"
    spec.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "kaggle-image", "language": "python"})
    )
    return root / "jupyter"


@pytest.fixture()
def kaggle_tree(
    tmp_path: Path,
    sample: Path,
    tiny_model: Path,
    code_wheel: Path,
    wheels_dataset: Path,
    image: KaggleImage,
) -> Path:
    """/kaggle: the competition data, the code dataset (wheel + config), the model dataset
    (for the CPU kernel an OpenVINO export, made by `eedi export`)."""
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
    name = "minilm-openvino" if image.accelerator == "cpu" else "minilm-ft"
    (code / CONFIG_FILE_NAME).write_text(
        f'[retrieval]\nmodels = ["runs/{name}"]\nshow_progress = false\n[evaluate]\nfolds = 3\n'
    )
    local_model = tmp_path / "runs" / name
    if image.accelerator == "cpu":
        export = ["export", str(tiny_model), "--to", str(local_model), "--data-dir", str(sample),
                  "--quiet", "--no-export-check"]  # fmt: skip
        assert cli_main(export) == 0
    else:
        shutil.copytree(tiny_model, local_model)
    build_folder_dataset(inputs / "eedi-kit-model", [local_model])
    (root / "working").mkdir()
    build_notebook(PROJECT / "notebooks" / "inference.py", root / "working" / "inference.ipynb")
    return root


def test_the_namespace_really_has_no_network() -> None:
    probe = "import socket; socket.create_connection(('151.101.0.223', 443), timeout=5)"
    result = subprocess.run([*OFFLINE, sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode != 0 and "unreachable" in result.stderr


@pytest.mark.parametrize(
    "image, rerun",
    [("gpu", False), ("gpu", True), ("cpu", False)],
    ids=["gpu-commit", "gpu-competition-rerun", "cpu-commit"],
    indirect=["image"],
    scope="module",  # each image's site is built once
)
def test_inference_notebook_runs_offline_in_a_kaggle_tree(
    image: KaggleImage,
    rerun: bool,
    kaggle_tree: Path,
    kaggle_image: Path,
    wheels_dataset: Path,
    sample: Path,
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
    assert re.search(r"eedi[-_]kit-0", names), names
    shipped = json.loads((wheels_dataset / WHEEL_SET_FILE).read_text())["shipped"]
    for pin in shipped:  # every shipped wheel the image lacks or has at another version
        if not image.satisfies(Requirement(pin)):  # openvino among them: no image has it
            name, version = pin.split("==")
            spelt = "[-_.]".join(re.escape(part) for part in re.split(r"[-_.]", name))
            pattern = rf"(?<!\S){spelt}-{re.escape(version)}(?=\s|$)"
            assert re.search(pattern, names, re.IGNORECASE), pin
    mounted = kaggle_tree / "input" / "competitions" / COMPETITION
    assert f"data: {mounted} (Kaggle competition input)" in printed
    assert ('"map@25"' in printed) is not rerun  # the CV report only on the commit run
    assert_valid_submission(working / "submission.csv", sample)
