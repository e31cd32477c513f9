"""LLM data generation through an OpenAI-compatible endpoint (extra `[llm]`): client, cache,
job runner, paraphrases, synthetic questions. The core never imports this package."""
