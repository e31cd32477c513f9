"""The kernels the notebooks become: per-kernel rules (online or offline, GPU or not), the
paraphrase kernel (online, no GPU), and the set-up cells every kernel starts with."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import pytest

from eedi_utils.config import config_from_dict
from eedi_utils.inputs import COMPETITION
from eedi_utils.kaggle.kernels import (
    KERNEL_NEEDS,
    METADATA_FILE,
    build_kernel,
    metadata_problems,
    render_metadata,
)

PROJECT = Path(__file__).resolve().parents[1]
TEMPLATES = PROJECT / "kernel-metadata"
NOTEBOOKS = PROJECT / "notebooks"
CONFIG = config_from_dict({"retrieval": {"models": ["runs/minilm-ft"]}})


def test_the_paraphrase_kernel_builds_online_without_gpu_with_code_and_wheels(tmp_path) -> None:
    folder = build_kernel(TEMPLATES / "paraphrase", NOTEBOOKS, tmp_path / "k", "alice", CONFIG)
    meta = json.loads((folder / METADATA_FILE).read_text())
    assert (folder / "paraphrase.ipynb").is_file() and metadata_problems(meta, folder) == []
    assert meta["id"] == "alice/eedi-kit-paraphrase"
    assert meta["enable_internet"] is True  # it calls an OpenAI-compatible API
    assert meta["enable_gpu"] is False and "machine_shape" not in meta  # a CPU session
    assert meta["dataset_sources"] == ["alice/eedi-kit-code", "alice/eedi-kit-wheels"]
    assert meta["competition_sources"] == [COMPETITION]
    assert meta["kernel_sources"] == [] and meta["model_sources"] == []


def test_a_gpu_or_a_machine_shape_on_the_paraphrase_kernel_is_reported() -> None:
    good = render_metadata(TEMPLATES / "paraphrase" / METADATA_FILE, "alice", CONFIG)
    assert metadata_problems(good) == []
    assert any("enable_gpu" in p for p in metadata_problems({**good, "enable_gpu": True}))
    shaped = {**good, "machine_shape": "NvidiaTeslaT4"}
    assert any("machine_shape must be left out" in p for p in metadata_problems(shaped))
    offline = {**good, "enable_internet": False}
    assert any("enable_internet must be True" in p for p in metadata_problems(offline))
    assert any("competition" in p for p in metadata_problems({**good, "competition_sources": []}))


def test_the_cpu_kernel_is_the_inference_notebook_offline_with_no_accelerator(tmp_path) -> None:
    """What a CPU kernel's metadata holds, per the kaggle CLI (2.2.5,
    kaggle/api/kaggle_api_extended.py): `kernels_push` sends `enable_gpu`/`enable_tpu` false
    and `machine_shape` None when the metadata gives none (an accelerator only from
    `--accelerator` or `machine_shape`), `kernels_initialize` writes `"enable_gpu": "false",
    "machine_shape": ""` for a new kernel, and `enable_internet` defaults to true, so it is
    written out (docs/kaggle-cli.md §1)."""
    folder = build_kernel(TEMPLATES / "inference-cpu", NOTEBOOKS, tmp_path / "k", "alice", CONFIG)
    meta = json.loads((folder / METADATA_FILE).read_text())
    assert metadata_problems(meta, folder) == []
    assert (
        meta["id"] == "alice/eedi-kit-inference-cpu" and meta["code_file"] == "inference-cpu.ipynb"
    )
    assert meta["enable_gpu"] is False and meta["enable_tpu"] is False
    assert "machine_shape" not in meta and meta["enable_internet"] is False
    assert meta["dataset_sources"] == [  # the model dataset holds the exported folder
        "alice/eedi-kit-code",
        "alice/eedi-kit-wheels",
        "alice/eedi-kit-model",
    ]
    assert meta["competition_sources"] == [COMPETITION]
    built = jupytext.read(folder / "inference-cpu.ipynb").cells
    assert [c.source for c in built if c.cell_type == "code"] == code_cells("inference")
    for broken, message in [
        ({"machine_shape": "NvidiaTeslaT4"}, "machine_shape must be left out"),
        ({"enable_gpu": True}, "enable_gpu must be False"),
        ({"enable_tpu": True}, "enable_tpu must be False or left out"),
        ({"enable_internet": True}, "enable_internet must be False"),
        ({"competition_sources": []}, "competition_sources must include"),
    ]:
        assert any(message in p for p in metadata_problems({**meta, **broken})), broken
    initialized = {**meta, "machine_shape": "", "enable_tpu": False}  # kernels_initialize's ""
    assert metadata_problems(initialized) == []
    assert metadata_problems({k: v for k, v in meta.items() if k != "enable_tpu"}) == []


@pytest.mark.parametrize("name", sorted(KERNEL_NEEDS), ids=lambda n: n.split(".")[0])
def test_every_kernel_follows_its_own_row_of_the_table(name: str) -> None:
    """Each committed template passes; flipping its internet or its GPU is reported (an
    offline kernel switched online above all: a code competition's kernels run offline)."""
    meta = render_metadata(TEMPLATES / Path(name).stem / METADATA_FILE, "alice", CONFIG)
    needs = KERNEL_NEEDS[name]
    assert meta["code_file"] == name and metadata_problems(meta) == []
    assert meta["enable_internet"] is needs.internet and meta["enable_gpu"] is needs.gpu
    flipped = {**meta, "enable_internet": not needs.internet}
    assert f"enable_internet must be {needs.internet!r}, is {not needs.internet!r}" in (
        metadata_problems(flipped)
    )
    assert any("enable_gpu" in p for p in metadata_problems({**meta, "enable_gpu": not needs.gpu}))


def test_every_template_has_a_row_and_unlisted_notebooks_get_the_strict_rules() -> None:
    assert {f"{t.parent.name}.ipynb" for t in TEMPLATES.glob(f"*/{METADATA_FILE}")} == set(
        KERNEL_NEEDS
    )
    meta = render_metadata(TEMPLATES / "inference" / METADATA_FILE, "alice", CONFIG)
    unknown = {**meta, "code_file": "other.ipynb", "enable_internet": True}
    assert any("enable_internet must be False" in p for p in metadata_problems(unknown))


def code_cells(name: str) -> list[str]:
    cells = jupytext.read(NOTEBOOKS / f"{name}.py").cells
    return [c.source for c in cells if c.cell_type == "code"]


def test_the_paraphrase_notebook_starts_with_the_same_offline_set_up_as_the_others() -> None:
    setups = {name: code_cells(name)[1] for name in ("inference", "train", "paraphrase")}
    assert setups["paraphrase"] == setups["inference"] == setups["train"]
    assert "kaggle_bootstrap.py" in setups["paraphrase"]


def test_the_openai_the_paraphrase_kernel_installs_is_the_one_the_tests_ran() -> None:
    pin = re.search(r"^openai==(\S+)$", (PROJECT / "requirements.txt").read_text(), re.M)
    assert pin is not None
    cell = code_cells("paraphrase")[2]
    assert f'OPENAI_VERSION = "{pin.group(1)}"' in cell
    assert 'f"openai=={OPENAI_VERSION}"' in cell and "KAGGLE_KERNEL_RUN_TYPE" in cell
