#!/usr/bin/env bash
# Download the competition data into data/ with the kaggle CLI (needs Kaggle credentials:
# KAGGLE_API_TOKEN, KAGGLE_USERNAME + KAGGLE_KEY, or ~/.kaggle/kaggle.json, and the
# competition's rules accepted on kaggle.com).
set -euo pipefail
competition=eedi-mining-misconceptions-in-mathematics
target="${1:-data}"
mkdir -p "$target"
kaggle competitions download -c "$competition" -p "$target"
python3 -m zipfile -e "$target/$competition.zip" "$target"
rm "$target/$competition.zip"
echo "data in $target: $(ls "$target" | tr '\n' ' ')"
