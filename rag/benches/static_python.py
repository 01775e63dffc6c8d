"""The reference side of rag/benches/rag.rs's static embedding: the encoder that the PyPI
package tokenlearn-static-model ships, on the same texts, in one call (best of three).
Argument: a JSON file of texts."""

import importlib.metadata
import json
import sys
import time

from static_model import get_embeddings

texts = json.load(open(sys.argv[1], encoding="utf-8"))
get_embeddings(texts[:1000])  # warm-up
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    get_embeddings(texts)
    best = min(best, time.perf_counter() - t)
version = importlib.metadata.version("tokenlearn-static-model")
print(
    f"reference (tokenlearn-static-model {version}, its Rust encoder): "
    f"{len(texts) / best:.0f} sentences/s in one call"
)
