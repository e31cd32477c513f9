"""LoRA with peft: which modules to adapt, adding an adapter (trainable weights in fp32 on any
base dtype), and folding it back into the base weights (peft's `merge_and_unload`) so the saved
folder loads anywhere without peft."""

from __future__ import annotations

from pathlib import Path

from peft import (
    LoraConfig,
    TaskType,
    get_peft_model,
    load_peft_weights,
    set_peft_model_state_dict,
)
from peft.tuners.tuners_utils import cast_adapter_dtype
from sentence_transformers import SentenceTransformer

from eedi_utils.config import RerankerTrainConfig, TrainConfig

DECODER_TYPES = {"qwen2", "qwen3", "mistral", "llama", "gemma", "gemma2", "phi3"}
LORA_TARGETS = {
    "bert": ["query", "key", "value", "dense"],
    "xlm-roberta": ["query", "key", "value", "dense"],
    "new": ["qkv_proj", "o_proj", "up_gate_proj", "down_proj"],
}
DECODER_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ADAPTER = "default"


def lora_targets(model_type: str, configured: list[str]) -> list[str] | str:
    """Modules LoRA adapts: the config's, else a known set per architecture, else all linear."""
    if configured:
        return configured
    if model_type in DECODER_TYPES:
        return DECODER_LORA_TARGETS
    return LORA_TARGETS.get(model_type, "all-linear")


def lora_config(
    config: TrainConfig | RerankerTrainConfig, model_type: str, task_type: TaskType
) -> LoraConfig:
    """The adapter a [train] or [train_reranker] section asks for on a `model_type` model."""
    return LoraConfig(
        task_type=task_type,
        r=config.lora_r,
        lora_alpha=config.lora_alpha or 2 * config.lora_r,
        lora_dropout=config.lora_dropout,
        target_modules=lora_targets(model_type, config.lora_target_modules),
    )


def add_lora(model: SentenceTransformer, config: TrainConfig) -> None:
    """A fresh trainable adapter on the model's transformer; its base weights stay frozen."""
    model_type = model[0].auto_model.config.model_type
    _add_fp32_adapter(model, lora_config(config, model_type, TaskType.FEATURE_EXTRACTION))


def load_lora(model: SentenceTransformer, checkpoint: Path) -> None:
    """The adapter saved in `checkpoint` back on the model, trainable, its weights exactly as
    saved: loaded into fp32 parameters (`load_adapter` would round them to a bf16 base's dtype)."""
    config = LoraConfig.from_pretrained(str(checkpoint))
    config.inference_mode = False
    _add_fp32_adapter(model, config)
    weights = load_peft_weights(str(checkpoint), device="cpu")
    loaded = set_peft_model_state_dict(model[0].auto_model, weights, adapter_name=ADAPTER)
    if loaded.unexpected_keys:
        raise RuntimeError(f"adapter weights not placed: {loaded.unexpected_keys[:3]}")


def _add_fp32_adapter(model: SentenceTransformer, config: LoraConfig) -> None:
    """`add_adapter` injects the adapter in the base layers' dtype (bf16 for a bf16 checkpoint,
    which transformers 5 loads as it is saved: `dtype="auto"`), and only `PeftModel.__init__`
    upcasts (peft 0.21.2, `peft_model.py`); peft's own `cast_adapter_dtype` does it here, so
    the weights and the optimizer state train in fp32 and fp16 AMP can unscale the gradients."""
    model.add_adapter(config, adapter_name=ADAPTER)
    cast_adapter_dtype(model[0].auto_model, ADAPTER)


def merge_lora(
    model: SentenceTransformer, into: SentenceTransformer | None = None
) -> SentenceTransformer:
    """Fold the adapter into the base weights with peft's `merge_and_unload`: the adapter's
    weights and config are taken off the transformer, attached as a `PeftModel` to `into`'s
    transformer (the base loaded again, e.g. unquantised), else to the model's own, merged,
    and the plain merged model replaces that transformer."""
    transformer = model[0].auto_model
    lora_config = transformer.peft_config[ADAPTER]
    weights = transformer.get_adapter_state_dict(ADAPTER)
    if into is None:
        transformer.delete_adapter(ADAPTER)
        into = model
    peft_model = get_peft_model(into[0].auto_model, lora_config, adapter_name=ADAPTER)
    prefixed = {f"base_model.model.{name}": value for name, value in weights.items()}
    loaded = set_peft_model_state_dict(peft_model, prefixed, adapter_name=ADAPTER)
    if loaded.unexpected_keys:
        raise RuntimeError(f"adapter weights not placed: {loaded.unexpected_keys[:3]}")
    into[0].model = peft_model.merge_and_unload()
    return into
