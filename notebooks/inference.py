# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Eedi misconceptions: inference
# Ranks the 25 most likely misconceptions for every wrong answer of `test.csv` and writes a
# validated `submission.csv`, exactly as `eedi predict` does.
#
# Inputs, first found wins: `$EEDI_DATA_DIR`, the Kaggle competition input, the sample bundled
# with the package. On Kaggle's commit run (not the scoring rerun) it first scores a
# question-grouped CV sample of train and prints MAP@25, seen and unseen.

# %% parameters
import os

CONFIG_FILE = None  # a TOML file; None: $EEDI_CONFIG, else the code dataset's eedi-kit.toml
MODELS: list[str] = []  # model folders, e.g. under /kaggle/input; empty: the config's or default

# %% 0. Offline set-up: on Kaggle, install this package from the attached wheel datasets
import importlib
import subprocess
import sys
from pathlib import Path

os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
inputs = Path(os.environ.get("EEDI_KAGGLE_ROOT", "/kaggle"), "input")
wheel_dirs = sorted(
    {w.parent for depth in ("*", "*/*", "*/*/*") for w in inputs.glob(f"{depth}/*.whl")}
)
if wheel_dirs:  # every package shipped as a wheel; pip leaves alone what the image satisfies
    names = sorted({w.name.split("-")[0] for folder in wheel_dirs for w in folder.glob("*.whl")})
    links = [arg for folder in wheel_dirs for arg in ("--find-links", str(folder))]
    pip = [sys.executable, "-m", "pip", "install", "--no-index", *links]
    installed = subprocess.run(
        [*pip, "eedi-kit[default-model]", *names], capture_output=True, text=True
    )
    print(installed.stdout, installed.stderr)  # into the notebook's log
    installed.check_returncode()
    importlib.invalidate_caches()

# %% 1. Settings and data
import json

from eedi_utils import pipeline
from eedi_utils.config import load_config
from eedi_utils.data import CompetitionData
from eedi_utils.inputs import (
    config_file,
    is_competition_rerun,
    output_dir,
    resolve_data_dir,
)

config = load_config(CONFIG_FILE or config_file())
source = resolve_data_dir()
print(f"data: {source}")
data = CompetitionData(source.path)

# %% 2. Quick CV on the commit run (skipped in the scoring rerun)
if not is_competition_rerun() and data.has_train:
    report = pipeline.evaluate(
        data, MODELS, config, fold=0, max_questions=config.evaluate.commit_run_questions
    )
    print(json.dumps(report, indent=2))

# %% 3. Predict the test set and write the submission
submission_path = pipeline.predict(data, output_dir() / "submission.csv", MODELS, config)
print(f"wrote {submission_path}")
