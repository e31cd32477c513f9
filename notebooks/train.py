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
BASE_MODEL: str | None = None  # model folder to start from; None: the config's [train] base_model
EPOCHS: int | None = None  # passes over the training rows; None: the config's [train] epochs
VAL_FOLD: int | None = None  # fold held out for validation; -1: train on every row (to submit)
OVERRIDES: dict[str, dict] = {}  # any other setting by section, e.g. {"train": {"lora_r": 16}}

# %% 0. Offline set-up on Kaggle: install the kit and its pinned wheels from the attached inputs
import os
import runpy
from pathlib import Path

inputs = Path(os.environ.get("EEDI_KAGGLE_ROOT", "/kaggle"), "input")
bootstraps = sorted(
    p for d in ("*", "*/*", "*/*/*") for p in inputs.glob(f"{d}/kaggle_bootstrap.py")
)
if bootstraps:  # the code dataset's notebooks/kaggle_bootstrap.py
    runpy.run_path(str(bootstraps[0]), run_name="__main__")
elif os.environ.get("KAGGLE_KERNEL_RUN_TYPE"):
    raise RuntimeError(f"no kaggle_bootstrap.py under {inputs}: attach the code dataset")

# %% 1. Settings and data
import json

from eedi_utils.config import load_config, with_parameters
from eedi_utils.data import CompetitionData
from eedi_utils.inputs import config_file, output_dir, resolve_data_dir
from eedi_utils.train.run import RetrieverTraining

parameters = with_parameters(
    OVERRIDES, train={"base_model": BASE_MODEL, "epochs": EPOCHS, "val_fold": VAL_FOLD}
)
config = load_config(CONFIG_FILE or config_file(), parameters)
source = resolve_data_dir()
print(f"data: {source}")
output = output_dir() / OUTPUT_DIR if not Path(OUTPUT_DIR).is_absolute() else Path(OUTPUT_DIR)

# %% 2. Train: evaluate, mine, train one epoch, re-mine, ... then save
training = RetrieverTraining(CompetitionData(source.path), output, config)
model = training.run(resume=RESUME)
print(f"model saved in {output}; seconds: {training.seconds}")

# %% 3. Validation per epoch (epoch 0 = before training): the figures, then the curves
from IPython.display import Image, display

from eedi_utils.metrics import map_key, recall_key
from eedi_utils.train.report import CURVES_FILE

k = config.retrieval.top_k
for entry in training.history:
    print(
        json.dumps(
            {key: entry[key] for key in ("epoch", map_key(k), recall_key(k), "seen", "unseen")}
        )
    )
if training.history:
    display(Image(filename=str(output / CURVES_FILE)))
