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
# # Eedi misconceptions: fine-tune a retriever
# Fine-tunes the embedding model on `train.csv` with hard negatives re-mined from the model
# being trained, exactly as `eedi train` does, and leaves a model folder that the inference
# notebook (or `eedi predict --model`) loads offline. Settings come from one TOML config
# (`$EEDI_CONFIG`); the `[train]` section holds the training ones.

# %% parameters
import os

CONFIG_FILE = None  # a TOML file; None: $EEDI_CONFIG, else the code dataset's eedi-kit.toml
OUTPUT_DIR = os.environ.get("EEDI_OUTPUT_DIR", "retriever")  # the model folder to write
RESUME = False  # go on from OUTPUT_DIR's last checkpoint

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

from eedi_utils.config import load_config
from eedi_utils.data import CompetitionData
from eedi_utils.inputs import config_file, output_dir, resolve_data_dir
from eedi_utils.train.run import RetrieverTraining

config = load_config(CONFIG_FILE or config_file())
source = resolve_data_dir()
print(f"data: {source}")
output = output_dir() / OUTPUT_DIR if not Path(OUTPUT_DIR).is_absolute() else Path(OUTPUT_DIR)

# %% 2. Train: evaluate, mine, train one epoch, re-mine, ... then save
trainer = RetrieverTraining(CompetitionData(source.path), output, config)
model = trainer.run(resume=RESUME)
print(f"model saved in {output}; seconds: {trainer.seconds}")

# %% 3. Validation MAP@25 per epoch (epoch 0 = before training)
for entry in trainer.history:
    print(json.dumps({k: entry[k] for k in ("epoch", "map@25", "recall@25", "seen", "unseen")}))
print(f"curves: {output / 'training_curves.png'}")
