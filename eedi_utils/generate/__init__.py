"""LLM data generation through an OpenAI-compatible endpoint (extra `[llm]`): client, cache,
job runner, paraphrases, synthetic questions. The core imports only `settings` (the
`[generate]` section, plain dataclasses), never the rest."""
