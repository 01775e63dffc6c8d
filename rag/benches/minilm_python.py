"""The reference side of rag/benches/rag.rs: sentence-transformers' all-MiniLM-L6-v2 on the
same texts, batches of 32, on the CPU. Arguments: the model folder, a JSON file of texts."""

import json
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

model = SentenceTransformer(sys.argv[1], device="cpu")
texts = json.load(open(sys.argv[2], encoding="utf-8"))
model.encode(texts[:64], batch_size=32)  # warm-up
t = time.perf_counter()
model.encode(texts, batch_size=32)
rate = len(texts) / (time.perf_counter() - t)
print(
    f"reference (sentence-transformers, torch {torch.__version__}, "
    f"{torch.get_num_threads()} threads): {rate:.0f} sentences/s in batches of 32"
)
