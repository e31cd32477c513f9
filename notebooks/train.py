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

CONFIG_FILE = os.environ.get("EEDI_CONFIG")  # a TOML file with a section per stage, or None
OUTPUT_DIR = os.environ.get("EEDI_OUTPUT_DIR", "retriever")  # the model folder to write
RESUME = False  # go on from OUTPUT_DIR's last checkpoint

# %% 1. Settings and data
import json
from pathlib import Path

from eedi_utils.config import load_config
from eedi_utils.data import CompetitionData
from eedi_utils.kaggle_env import output_dir, resolve_data_dir
from eedi_utils.training import Trainer

config = load_config(CONFIG_FILE)
source = resolve_data_dir()
print(f"data: {source}")
output = output_dir() / OUTPUT_DIR if not Path(OUTPUT_DIR).is_absolute() else Path(OUTPUT_DIR)

# %% 2. Train: evaluate, mine, train one epoch, re-mine, ... then save
trainer = Trainer(CompetitionData(source.path), output, config)
model = trainer.run(resume=RESUME)
print(f"model saved in {output}; seconds: {trainer.seconds}")

# %% 3. Validation MAP@25 per epoch (epoch 0 = before training)
for entry in trainer.history:
    print(json.dumps({k: entry[k] for k in ("epoch", "map@25", "recall@25", "seen", "unseen")}))
print(f"curves: {output / 'training_curves.png'}")
