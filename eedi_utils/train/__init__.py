"""Fine-tuning a retriever: training rows, hard-negative mining, LoRA, the epoch loop, curves."""
