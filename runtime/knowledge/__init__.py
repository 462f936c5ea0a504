"""Knowledge (RAG) per namespace: embeddings, vector and BM25 indexes, hybrid retrieval (docs/knowledge.md)."""
