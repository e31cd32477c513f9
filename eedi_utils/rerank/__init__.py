"""The LLM stage of inference: prompts, label scoring, model backends, the stage runner."""
