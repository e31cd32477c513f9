"""The notebooks' offline set-up (notebooks/kaggle_bootstrap.py): every attached wheel pinned
to its file's version, and a clear failure when no wheel is attached."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
BOOTSTRAP = runpy.run_path(str(PROJECT / "notebooks" / "kaggle_bootstrap.py"))


def touch_wheels(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_each_wheel_is_pinned_to_its_file_version_in_every_input_layout(tmp_path) -> None:
    inputs = tmp_path / "input"
    touch_wheels(inputs / "eedi-kit-code", ["eedi_kit-0.1.0-py3-none-any.whl"])
    touch_wheels(
        inputs / "datasets" / "bob" / "eedi-kit-wheels",
        [
            "transformers-5.19.0-py3-none-any.whl",
            "sentence_transformers-6.2.0-py3-none-any.whl",
            "peft-0.9.0-py3-none-any.whl",
            "peft-0.21.2-py3-none-any.whl",
        ],
    )
    folders = BOOTSTRAP["wheel_folders"](inputs)
    assert [f.name for f in folders] == ["eedi-kit-wheels", "eedi-kit-code"]
    assert BOOTSTRAP["wheel_pins"](folders) == [
        "eedi-kit==0.1.0",
        "peft==0.21.2",  # the highest version, compared as numbers
        "sentence-transformers==6.2.0",
        "transformers==5.19.0",
    ]


def test_no_wheels_attached_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "input" / "some-model").mkdir(parents=True)
    with pytest.raises(RuntimeError, match="no wheels under .*attach the code and wheels"):
        BOOTSTRAP["install"](tmp_path / "input")


def test_the_wheels_kernels_output_is_found_five_levels_down_and_a_linked_copy_once(
    tmp_path,
) -> None:
    """Kernel outputs mount at input/notebooks/<owner>/<slug>/ (kaggle-facts: public 2026
    notebooks) and notebooks/wheels.py writes into wheels/ there."""
    inputs = tmp_path / "input"
    touch_wheels(inputs / "eedi-kit-code", ["eedi_kit-0.1.0-py3-none-any.whl"])
    vllm = inputs / "notebooks" / "alice" / "eedi-kit-vllm-wheels" / "wheels"
    touch_wheels(vllm, ["vllm-0.19.1-cp38-abi3-manylinux_2_31_x86_64.whl"])
    assert BOOTSTRAP["wheel_folders"](inputs) == [inputs / "eedi-kit-code", vllm]
    (inputs / "eedi-kit-vllm-wheels").symlink_to(vllm.parent)  # the older layout, same folder
    folders = BOOTSTRAP["wheel_folders"](inputs)
    assert len(folders) == 2 and {f.resolve() for f in folders} == {
        (inputs / "eedi-kit-code").resolve(),
        vllm.resolve(),
    }
    command = BOOTSTRAP["install_command"](inputs)
    assert "vllm==0.19.1" in command and "eedi-kit[default-model,cpu]==0.1.0" in command


def test_every_kernel_installs_the_kit_with_the_extras_the_wheel_set_ships() -> None:
    """The bootstrap, the wheels kernel's resolution and the wheels dataset's closure name the
    same extras; `cpu` (OpenVINO, ONNX Runtime) lets any kernel load an exported model."""
    import tomllib

    import jupytext

    from eedi_utils.kaggle.datasets import KIT_EXTRAS

    assert BOOTSTRAP["KIT_EXTRAS"] == ",".join(KIT_EXTRAS) == "default-model,cpu"
    wheels = jupytext.read(PROJECT / "notebooks" / "wheels.py")
    parameters = next(c for c in wheels.cells if c.metadata.get("title") == "parameters")
    assert f'KIT_EXTRAS = "{BOOTSTRAP["KIT_EXTRAS"]}"' in parameters.source
    declared = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    cpu = declared["optional-dependencies"]["cpu"]
    assert {r.split(">=")[0] for r in cpu} == {"openvino", "onnxruntime"}


def test_a_config_that_attaches_the_vllm_wheels_stops_when_they_are_missing(tmp_path) -> None:
    inputs = tmp_path / "input"
    touch_wheels(inputs / "eedi-kit-code", ["eedi_kit-0.1.0-py3-none-any.whl"])
    config = inputs / "eedi-kit-code" / "eedi-kit.toml"
    config.write_text("[kaggle]\nattach_vllm_wheels = true\n")
    with pytest.raises(RuntimeError) as err:
        BOOTSTRAP["install_command"](inputs, config)
    message = str(err.value)
    assert "attach_vllm_wheels = true" in message and str(inputs / "eedi-kit-code") in message
    touch_wheels(inputs / "notebooks" / "alice" / "eedi-kit-vllm-wheels" / "wheels",
                 ["vllm-0.19.1-cp38-abi3-manylinux_2_31_x86_64.whl"])  # fmt: skip
    assert "vllm==0.19.1" in BOOTSTRAP["install_command"](inputs, config)
