"""notebooks/wheels.py's resolution, run for real: pip, in the image's Python, is asked what the
kit and vLLM need beyond what that Python already has, under the wheels dataset's constraints;
exactly that is downloaded and installed offline. Stand-ins: a fresh venv for the image (with
two packages already in it), tiny wheels in a local index for PyPI, no smoke test (no GPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
from test_wheel_set import make_wheel

PROJECT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = os.environ.get("EEDI_VLLM_PYTHON", "")


def wheels_notebook_script(folder: Path, **parameters) -> Path:
    """notebooks/wheels.py as a script with these values set at the end of its parameters cell."""
    notebook = jupytext.read(PROJECT / "notebooks" / "wheels.py")
    cell = next(c for c in notebook.cells if c.metadata.get("title") == "parameters")
    cell.source += "".join(f"\n{name} = {value!r}" for name, value in parameters.items())
    script = folder / "wheels_script.py"
    script.write_text(jupytext.writes(notebook, fmt="py:percent"))
    return script


def test_the_wheels_kernel_ships_what_the_image_lacks_under_the_kits_pins(tmp_path) -> None:
    index = tmp_path / "index"  # PyPI
    for name, version, requires in [
        ("vllm", "0.19.1", ("eedi-t-core>=1", "eedi-t-vdep")),
        ("bitsandbytes", "0.50.2", ()),
        ("eedi-t-core", "1.0", ()),
        ("eedi-t-core", "2.0", ()),
        ("eedi-t-core", "3.0", ()),  # newer than the kit's pin: must not be shipped
        ("eedi-t-model", "1.0", ()),
        ("eedi-t-runtime", "1.0", ()),
        ("eedi-t-vdep", "1.0", ()),
    ]:
        make_wheel(index, name, version, requires)
    inputs = tmp_path / "kaggle" / "input" / "datasets" / "alice"
    kit_requires = (
        "eedi-t-core>=1",
        'eedi-t-model; extra == "default-model"',
        'eedi-t-runtime; extra == "cpu"',
    )
    make_wheel(inputs / "eedi-kit-code", "eedi-kit", "0.1.0", kit_requires)
    (inputs / "eedi-kit-wheels").mkdir(parents=True)
    (inputs / "eedi-kit-wheels" / "constraints.txt").write_text("eedi-t-core==2.0\n")

    image = tmp_path / "image"  # Kaggle's Python, with an old core and vLLM's dependency
    subprocess.run([sys.executable, "-m", "venv", str(image)], check=True)
    python = str(image / "bin" / "python")
    offline = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index)}
    offline.pop("PIP_CONSTRAINT", None)
    preinstall = [python, "-m", "pip", "install", "-q", "eedi-t-core==1.0", "eedi-t-vdep==1.0"]
    subprocess.run(preinstall, check=True, env=offline)

    output = tmp_path / "working" / "wheels"
    script = wheels_notebook_script(tmp_path, OUTPUT=str(output), SMOKE_TEST=False)
    env = {**offline, "EEDI_KAGGLE_ROOT": str(tmp_path / "kaggle")}
    done = subprocess.run([python, str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    shipped = sorted(p.name.split("-py3")[0] for p in output.glob("*.whl"))
    assert shipped == [
        "bitsandbytes-0.50.2",
        "eedi_t_core-2.0",  # the kit's pin over the image's 1.0, not the newest 3.0
        "eedi_t_model-1.0",  # the kit's default-model extra
        "eedi_t_runtime-1.0",  # and its cpu extra
        "vllm-0.19.1",
    ]  # eedi-t-vdep is the image's; the kit's own wheel stays in the code dataset
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["kit"] == "0.1.0" and manifest["constraints"] == ["eedi-t-core==2.0"]
    assert sorted(manifest["shipped"]) == [
        "bitsandbytes==0.50.2", "eedi-t-core==2.0", "eedi-t-model==1.0",
        "eedi-t-runtime==1.0", "vllm==0.19.1",
    ]  # fmt: skip
    versions = subprocess.run(  # installed offline from those wheels, as inference will
        [python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True, env=offline
    )
    installed = {p["name"]: p["version"] for p in json.loads(versions.stdout)}
    assert installed["vllm"] == "0.19.1" and installed["eedi-t-core"] == "2.0"
    assert installed["eedi-kit"] == "0.1.0"


@pytest.mark.skipif(not VLLM_PYTHON, reason="$EEDI_VLLM_PYTHON is not set (scripts/vllm_env.sh)")
def test_the_tensor_parallel_smoke_test_scores_with_the_kits_backend(tmp_path, sample) -> None:
    """notebooks/wheels.py's tensor-parallel smoke cell run for real against vLLM's CPU build
    (tests/test_vllm.py's environment): the kit's VllmBackend with the [rerank] defaults,
    prefix caching on, scores as transformers does, and the cell reports the tensor-parallel
    size the engine took (1 without a GPU; every visible GPU, 2 on T4 x2, by
    rerank/engine.py). Cell 4, which makes its model, forces TRITON_ATTN (no CPU kernel):
    stood in for by a tiny model with vLLM-sized heads."""
    from tiny_models import sample_corpus, tiny_vllm_lm

    corpus = sample_corpus(sample)
    folder = tiny_vllm_lm(tmp_path / "lm", corpus)
    notebook = jupytext.read(PROJECT / "notebooks" / "wheels.py")
    cells = {str(c.metadata.get("title")).split(".")[0]: c.source for c in notebook.cells}
    script = tmp_path / "tp_smoke.py"
    script.write_text(
        f"{cells['parameters']}\nimport json, torch\nfrom pathlib import Path\n"
        "from transformers import Qwen2ForCausalLM\n"
        f"folder, corpus = Path({str(folder)!r}), {corpus[:30]!r}\n"
        f"{cells['6']}\nprint(json.dumps(tp_smoke))\n"
    )
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONPATH": str(PROJECT)}
    env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine in-process: no main guard here
    done = subprocess.run([VLLM_PYTHON, str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    print(f"tensor-parallel smoke cell on vLLM's CPU build: {report}")
    assert report["ran"] and "error" not in report, report
    assert report["tensor_parallel_size"] == 1 and report["prefix_caching"] is True
    assert report["max_abs_logprob_difference"] < 0.05, report
