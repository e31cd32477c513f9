"""Fine-tuning a retriever: training rows, hard-negative mining, the epoch loop, reports."""
