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
# # eedi-kit: vLLM wheels built on Kaggle's own image
# Compiled stacks cannot be assembled on another machine and trusted: this notebook runs with
# the internet ON, on the same T4 image as the inference kernel, downloads the pinned vLLM with
# everything it needs beyond the image, smoke-tests that install on a tiny model made here,
# and leaves the wheels as its output. The inference kernel attaches this kernel's output
# (`kernel_sources`, `[kaggle] attach_vllm_wheels = true`) and installs them offline.
#
# Pins: vLLM 0.19.1 requires `torch==2.10.0` (its wheel's metadata), the torch of Kaggle's
# image in 2026 (2.10.0+cu128, Python 3.12), so the image's torch, nvidia-* and triton are
# kept and only what the image lacks, or has at another version, is shipped.

# %% parameters
VLLM_VERSION = "0.19.1"
BITSANDBYTES_VERSION = "0.50.2"  # 4/8-bit embedders, QLoRA ([retrieval] load_in_bits)
OUTPUT = "/kaggle/working/wheels"
SMOKE_TEST = True  # load a tiny model in vLLM (fp16, Triton attention, eager) and generate
AUTO_ROUND_VERSION = "0.16.1"  # GPTQ smoke test: the format `eedi train-reranker` writes
GPTQ_SMOKE_TEST = True  # quantise the tiny model to 4-bit GPTQ and run it in vLLM on this T4

# %% 1. Download vLLM and its whole dependency closure for this Python and platform
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

wheels = Path(OUTPUT)
wheels.mkdir(parents=True, exist_ok=True)
pip = [sys.executable, "-m", "pip"]
subprocess.run(
    [
        *pip,
        "download",
        "--only-binary=:all:",
        "-d",
        str(wheels),
        f"vllm=={VLLM_VERSION}",
        f"bitsandbytes=={BITSANDBYTES_VERSION}",
    ],
    check=True,
)


# %% 2. Leave out what the image already has at the same version (torch, nvidia-*, triton...)
def distribution(wheel: Path) -> tuple[str, str]:
    name, version = wheel.name.split("-")[:2]
    return name.lower().replace("_", "-"), version


kept, dropped = [], []
for wheel in sorted(wheels.glob("*.whl")):
    name, version = distribution(wheel)
    try:
        installed = metadata.version(name).split("+")[0]  # 2.10.0+cu128 is torch 2.10.0
    except metadata.PackageNotFoundError:
        installed = None
    if installed == version.split("+")[0]:
        wheel.unlink()
        dropped.append(f"{name}=={version}")
    else:
        kept.append(f"{name}=={version}")
print(f"shipping {len(kept)} wheels; the image has {len(dropped)}: {dropped}")

# %% 3. Install offline from those wheels, exactly as the inference kernel will
subprocess.run([*pip, "install", "--no-index", "--find-links", str(wheels), *kept], check=True)

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

# %% 5. GPTQ smoke test: the tiny model quantised as `eedi train-reranker --quantize-bits 4`
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

# %% 6. Record what was shipped, and for which image
manifest = {
    "vllm": VLLM_VERSION,
    "bitsandbytes": BITSANDBYTES_VERSION,
    "python": sys.version.split()[0],
    "image_torch": metadata.version("torch"),
    "shipped": kept,
    "left_to_the_image": dropped,
    "smoke_test": smoke,
    "gptq_smoke_test": {"auto_round": AUTO_ROUND_VERSION, **gptq_smoke},
}
(wheels / "manifest.json").write_text(json.dumps(manifest, indent=2))
print(json.dumps(manifest, indent=2))
