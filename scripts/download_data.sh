#!/usr/bin/env bash
# Download the competition data into data/ (or $1) with the kaggle CLI. Needs credentials the
# CLI accepts (kaggle auth login, $KAGGLE_API_TOKEN, ~/.kaggle/access_token, kaggle.json) and
# the competition's rules accepted on kaggle.com.
set -euo pipefail
competition=eedi-mining-misconceptions-in-mathematics
target="${1:-data}"
python3 -m eedi_utils.kaggle.cli || exit 2
mkdir -p "$target"
kaggle competitions download -c "$competition" -p "$target"
python3 -m zipfile -e "$target/$competition.zip" "$target"
rm "$target/$competition.zip"
echo "data in $target: $(ls "$target" | tr '\n' ' ')"
