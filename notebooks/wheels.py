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
# # eedi-kit: the offline wheels, resolved on Kaggle's own image
# Compiled stacks cannot be assembled on another machine and trusted: this notebook runs with
# the internet ON, on the same T4 image as the inference kernel, and asks pip *here*, where it
# sees what the image really has, what the kit and vLLM need beyond it. It downloads exactly
# that, installs it offline as the inference kernel will, smoke-tests vLLM on a tiny model made
# here, and leaves the wheels and a manifest as its output. The inference kernel attaches this
# output (`kernel_sources`, `[kaggle] attach_vllm_wheels = true`) and installs it offline.
#
# It attaches the code dataset (the kit's wheel) and the wheels dataset built on the
# development machine, whose `constraints.txt` holds the kit's tested pins: vLLM 0.19.1 accepts
# any transformers >= 4.56 outside 5.0-5.5, so unconstrained it would ship the newest and
# replace the kit's. vLLM 0.19.1 requires `torch==2.10.0`, the image's, so the image's torch,
# nvidia-* and triton are used as they are.

# %% parameters
VLLM_VERSION = "0.19.1"
BITSANDBYTES_VERSION = "0.50.2"  # 4/8-bit embedders, QLoRA ([retrieval] load_in_bits)
KIT_EXTRAS = "default-model,cpu"  # the extras the bootstrap installs the kit with
OUTPUT = "/kaggle/working/wheels"
SMOKE_TEST = True  # load a tiny model in vLLM (fp16, Triton attention, eager) and generate
AUTO_ROUND_VERSION = "0.16.1"  # GPTQ smoke test: the format `eedi train-reranker` writes
GPTQ_SMOKE_TEST = True  # quantise the tiny model to 4-bit GPTQ and run it in vLLM on this T4
TP_SMOKE_TEST = True  # the kit's vLLM backend on both T4s with prefix caching, as inference

# %% 1. The kit's wheel and tested pins, from the attached code and wheels datasets
import json
import os
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

inputs = Path(os.environ.get("EEDI_KAGGLE_ROOT", "/kaggle"), "input")
kit_wheels = sorted(inputs.rglob("eedi_kit-*.whl"))
constraints = sorted(inputs.rglob("constraints.txt"))
if not kit_wheels or not constraints:
    raise RuntimeError(
        f"no eedi_kit wheel or constraints.txt under {inputs}: attach the code and wheels "
        "datasets (scripts/push_datasets.py builds them)"
    )
kit_version = kit_wheels[-1].name.split("-")[1]
wheels = Path(OUTPUT)
wheels.mkdir(parents=True, exist_ok=True)
pip = [sys.executable, "-m", "pip"]
wanted = [
    f"eedi-kit[{KIT_EXTRAS}]=={kit_version}",
    f"vllm=={VLLM_VERSION}",
    f"bitsandbytes=={BITSANDBYTES_VERSION}",
]

# %% 2. Ask pip on this image what it would install (markers for this Python, the packages
# this image really has), under the kit's pins; then download exactly that, wheels only
report = Path(tempfile.mkdtemp()) / "resolution.json"
resolve = [*pip, "install", "--dry-run", "--quiet", "--report", str(report)]
resolve += ["--only-binary=:all:", "-c", str(constraints[0])]
resolve += ["--find-links", str(kit_wheels[-1].parent), *wanted]
subprocess.run(resolve, check=True)
to_install = [
    f"{item['metadata']['name']}=={item['metadata']['version']}"
    for item in json.loads(report.read_text())["install"]
]
shipped = [pin for pin in to_install if not pin.lower().replace("_", "-").startswith("eedi-kit==")]
download = [*pip, "download", "--no-deps", "--only-binary=:all:", "-d", str(wheels), *shipped]
subprocess.run(download, check=True)
print(f"shipping {len(shipped)} wheels beyond the image: {shipped}")

# %% 3. Install offline from those wheels and the kit's, exactly as the inference kernel will
links = ["--find-links", str(wheels), "--find-links", str(kit_wheels[-1].parent)]
subprocess.run([*pip, "install", "--no-index", *links, *wanted, *shipped], check=True)

# %% 4. Smoke test: a tiny Qwen2 made here (no hub), fp16, Triton attention, eager
smoke = {"ran": False}
gptq_smoke = {"ran": False}
if SMOKE_TEST:
    import torch
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    folder = Path("/kaggle/tmp/tiny-qwen2")
    corpus = [f"Believes that {a} plus {b} is {a * b}" for a in range(30) for b in range(30)]
    tokenizer = Tokenizer(BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(
        corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<unk>"])
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(fast),
        hidden_size=128,  # every linear layer splits into GPTQ groups of 128
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    Qwen2ForCausalLM(config).to(torch.float16).save_pretrained(folder)
    fast.save_pretrained(folder)

    from vllm import LLM, SamplingParams

    def generate(model: Path) -> str:
        llm = LLM(
            model=str(model),
            dtype="half",
            attention_backend="TRITON_ATTN",  # FlashAttention needs sm80; a T4 is sm75
            enforce_eager=True,
            max_model_len=256,
            gpu_memory_utilization=0.3,
        )
        out = llm.generate(["Believes that 3 plus"], SamplingParams(max_tokens=4, temperature=0))
        del llm
        torch.cuda.empty_cache()
        return out[0].outputs[0].text

    smoke = {"ran": True, "text": generate(folder), "gpu": torch.cuda.get_device_name()}
    print(smoke)

# %% 5. GPTQ smoke test: the tiny model quantised as
#      `eedi train-reranker --train-reranker-quantize-bits 4`
# does (AutoRound, W4A16, groups of 128, symmetric, GPTQ format), then run in vLLM on this T4.
# AutoRound is installed here only (the inference kernel needs vLLM alone); a failure is
# recorded in the manifest, the wheels are kept.
if SMOKE_TEST and GPTQ_SMOKE_TEST:
    try:
        subprocess.run([*pip, "install", f"auto-round=={AUTO_ROUND_VERSION}"], check=True)
        from auto_round import AutoRound

        ids = fast("\n".join(corpus))["input_ids"]
        windows = [torch.tensor([ids[i : i + 64]]) for i in range(0, 64 * 16, 64)]
        quantizer = AutoRound(
            str(folder), fast, scheme="W4A16", group_size=128, sym=True, dataset=windows,
            iters=0, nsamples=len(windows), seqlen=64, enable_torch_compile=False,
        )  # fmt: skip
        _, quantized = quantizer.quantize_and_save("/kaggle/tmp/tiny-gptq", format="auto_gptq")
        gptq_smoke = {"ran": True, "text": generate(Path(quantized))}
    except Exception as err:  # recorded in the manifest: the wheels above are the output
        gptq_smoke = {"ran": True, "error": f"{type(err).__name__}: {err}"}
    print(gptq_smoke)

# %% 6. Tensor-parallel smoke test, as inference runs vLLM: the kit's `VllmBackend` with the
# [rerank] defaults (every visible GPU: TP = 2 on T4 x2; prefix caching; TRITON_ATTN on a T4),
# one `choice_logprobs` call on prompts sharing a prefix of several KV blocks, against
# transformers on the same prompts. A failure is recorded in the manifest, the wheels kept.
tp_smoke = {"ran": False}
if SMOKE_TEST and TP_SMOKE_TEST:
    try:
        from eedi_utils.config import RerankConfig
        from eedi_utils.rerank.vllm import VllmBackend

        config = RerankConfig(dtype="float16", max_model_len=256, gpu_memory_utilization=0.3)
        backend = VllmBackend(folder, config)
        prefix = backend.tokenizer(" ".join(corpus[:30]))["input_ids"][:96]  # 6 blocks of 16
        choices = list(dict.fromkeys(prefix))[:5]  # five distinct tokens of the text
        prompts = [prefix + [token] for token in choices]
        scores = backend.choice_logprobs(prompts, choices)
        engine = backend.llm.llm_engine.vllm_config
        parallel = engine.parallel_config.tensor_parallel_size
        prefix_caching = engine.cache_config.enable_prefix_caching
        del backend, engine
        device = "cuda" if torch.cuda.is_available() else "cpu"
        reference = Qwen2ForCausalLM.from_pretrained(folder, dtype=torch.float16).to(device)
        with torch.inference_mode():
            logits = reference(torch.tensor(prompts, device=device)).logits[:, -1, choices]
        expected = logits.float().log_softmax(-1).cpu().numpy()
        tp_smoke = {
            "ran": True,
            "tensor_parallel_size": parallel,
            "prefix_caching": prefix_caching,
            "max_abs_logprob_difference": float(abs(scores - expected).max()),
        }
    except Exception as err:  # recorded in the manifest: the wheels above are the output
        tp_smoke = {"ran": True, "error": f"{type(err).__name__}: {err}"}
    print(tp_smoke)

# %% 7. Record what was shipped, and for which image
manifest = {
    "kit": kit_version,
    "vllm": VLLM_VERSION,
    "bitsandbytes": BITSANDBYTES_VERSION,
    "python": sys.version.split()[0],
    "image_torch": next((d.version for d in metadata.distributions(name="torch")), None),
    "constraints": constraints[0].read_text().split(),
    "shipped": shipped,
    "smoke_test": smoke,
    "gptq_smoke_test": {"auto_round": AUTO_ROUND_VERSION, **gptq_smoke},
    "tp_smoke_test": tp_smoke,
}
(wheels / "manifest.json").write_text(json.dumps(manifest, indent=2))
print(json.dumps(manifest, indent=2))
