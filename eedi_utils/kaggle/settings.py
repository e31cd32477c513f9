"""`[kaggle]`: names on Kaggle and what the offline wheels are built for. Plain dataclasses,
loaded and checked by `eedi_utils.config` with every other section; importing this needs no
extra."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class KaggleConfig:
    """Names on Kaggle, and what the offline wheels are built for."""

    username: str = field(
        default="",
        metadata={
            "help": "Kaggle user owning datasets and kernels; empty: the user the kaggle CLI "
            "authenticates as (`kaggle config view`)."
        },
    )
    code_dataset: str = field(
        default="eedi-kit-code",
        metadata={
            "help": "Dataset slug: this package as a wheel and the run's config (eedi-kit.toml)."
        },
    )
    wheels_dataset: str = field(
        default="eedi-kit-wheels", metadata={"help": "Dataset slug: the offline wheels."}
    )
    model_dataset: str = field(
        default="eedi-kit-model", metadata={"help": "Dataset slug: the [retrieval] models."}
    )
    data_dataset: str = field(
        default="eedi-kit-data", metadata={"help": "Dataset slug: [train] extra_train_files."}
    )
    extra_dataset_sources: list[str] = field(
        default_factory=list,
        metadata={"help": "More '<owner>/<slug>' datasets the kernels attach (e.g. an LLM)."},
    )
    model_sources: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Kaggle Models the kernels attach ('<owner>/<model>/<framework>/"
            "<variation>/<version>', e.g. a Qwen2.5 AWQ checkpoint for [rerank])."
        },
    )
    wheel_requirements: list[str] = field(
        default_factory=list,
        metadata={
            "help": "More requirements for the wheels dataset beside the kit's own closure (e.g. "
            "'openai' for [llm]); a bare name is pinned to the version installed here. The "
            "closure of all of them over Kaggle's declared images (GPU and CPU) is shipped."
        },
    )
    attach_vllm_wheels: bool = field(
        default=False,
        metadata={
            "help": "Attach the output of the wheels kernel (notebooks/wheels.py: vLLM built on "
            "Kaggle's image) to the inference and train kernels, for [rerank] backend vllm."
        },
    )
    platforms: list[str] = field(
        default_factory=lambda: [
            *(f"manylinux_2_{minor}_x86_64" for minor in range(35, 16, -1)),
            "manylinux2014_x86_64",
        ],
        metadata={
            "help": "Wheel platform tags Kaggle's image accepts (glibc 2.35, Ubuntu 22.04), for "
            "pip download, which matches each tag exactly (vllm 0.19.1 is manylinux_2_31)."
        },
    )
