"""Fine-tuning the LLM reranker: out-of-fold candidates, listwise/pointwise prompts, the loss."""
