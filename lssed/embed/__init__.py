"""Utterance embeddings from a trained SER model (``lssed embed``; docs/transfer.md "Embeddings").

One vector per utterance of a feature set: by default the pooled penultimate features, i.e.
what the model's classifier ``fc`` receives; ``layer=`` pools another module's output over
time and frequency. Computed on Ray Data with the model on an actor pool. The table layout
(:data:`EMBEDDING_SCHEMA`) is shared with the transfer stage's baseline encoders, which write
theirs with :func:`write_embedding_table`.
"""

from lssed.embed.compute import (
    EMBEDDING_SCHEMA, EmbeddingSet, embed_features, read_embedding_meta, read_embeddings, write_embedding_table,
)

__all__ = ["EMBEDDING_SCHEMA", "EmbeddingSet", "embed_features", "read_embedding_meta", "read_embeddings",
           "write_embedding_table"]
