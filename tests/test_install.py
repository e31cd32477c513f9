"""The package as a user installs it: the core imports only what pyproject.toml declares for
the core, and the wheel installed into a fresh virtual environment with only its declared
dependencies (torch pinned first) predicts on the bundled sample."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from eedi_utils.data import CompetitionData
from eedi_utils.submission import read_submission, validate_submission

REPO = Path(__file__).resolve().parents[1]
CORE_MODULES = [
    "eedi_utils.cli",
    "eedi_utils.pipeline",
    "eedi_utils.inputs",
    "eedi_utils.train.retriever.run",
    "eedi_utils.rerank.stage",
    "eedi_utils.rerank.scoring",
    "eedi_utils.rerank.backends",
    "eedi_utils.train.reranker.run",
]
OPTIONAL = [
    "eedi_utils.generate",
    "eedi_utils.kaggle",
    "openai",
    "vllm",
    "kaggle",
    "jupytext",
    "auto_round",
]


SETTINGS = ["eedi_utils.generate", "eedi_utils.generate.settings"]
SETTINGS += ["eedi_utils.kaggle", "eedi_utils.kaggle.settings"]
"""What the core may import of the optional flows: their config sections (plain dataclasses)."""


def test_core_never_imports_optional_stacks() -> None:
    code = (
        f"import sys\nfor name in {CORE_MODULES!r}: __import__(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {OPTIONAL!r} "
        f"or m.startswith(('eedi_utils.generate', 'eedi_utils.kaggle')) and m not in {SETTINGS!r}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_requirements_pin_every_declared_dependency() -> None:
    """requirements.txt is the tested set: each core dependency and extra (but the CUDA-only
    ones, [vllm] and [gpu]) is pinned there, and its pin satisfies pyproject's lower bound."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra, packages in project["optional-dependencies"].items():
        if extra not in ("vllm", "gpu"):
            declared += packages
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower()] = tuple(int(p) for p in version.split("."))
    for requirement in declared:
        name, _, bound = requirement.partition(">=")
        name = name.strip().lower()
        assert name in pins, f"{name} is declared but not pinned in requirements.txt"
        if bound:
            assert pins[name] >= tuple(int(p) for p in bound.split(".")), requirement


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_predicts_with_declared_dependencies_only(
    code_wheel, sample, tmp_path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)  # a bare torch pulls a CUDA build
    subprocess.run([*pip, f"{code_wheel}[default-model]"], check=True)

    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EEDI_", "KAGGLE_", "VIRTUAL_ENV", "PYTHON"))
    }
    environ.update(HF_HUB_OFFLINE="1", PATH=f"{venv / 'bin'}:{environ['PATH']}")
    out = tmp_path / "submission.csv"
    predicted = subprocess.run(
        ["eedi", "predict", "--out", str(out), "--quiet"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert "bundled sample" in predicted.stderr
    data = CompetitionData(sample)
    validate_submission(
        read_submission(out), data.test(), set(data.misconceptions["MisconceptionId"])
    )

    missing = subprocess.run(
        ["eedi", "paraphrase", "--out", str(tmp_path / "p"), "--dry-run"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2
    assert "pip install 'eedi-kit[llm]'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_lower_bounds_of_the_libraries_whose_semantics_the_code_follows_are_the_tested_ones():
    """e.g. warmup_steps below 1 is a ratio from transformers 5 on: a lower bound of 4.x would
    admit versions where the code means something else."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    bounds = dict(d.split(">=") for d in project["dependencies"] if ">=" in d)
    pins = dict(
        line.split("==")
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    for name in ("transformers", "sentence-transformers", "peft", "accelerate"):
        assert pins[name].startswith(bounds[name]), f"{name}>={bounds[name]} vs tested {pins[name]}"
