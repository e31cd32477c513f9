"""Dev-machine tools for Kaggle (extra `[kaggle]`): the kaggle CLI, datasets, kernels; used by
scripts/. Code that runs inside a kernel lives in `eedi_utils.inputs`, not here."""
