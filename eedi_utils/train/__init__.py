"""Training: `retriever/` fine-tunes the embedding model (`eedi train`), `reranker/` the LLM
that reranks its candidates (`eedi train-reranker`); `lora` serves both."""
