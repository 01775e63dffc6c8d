"""Reference vectors for the `local` embedder's equivalence test (rag/tests/local_embedder.rs).

Run once, by hand, with the reference implementation (sentence-transformers on CPU torch):

    python3 -m venv ~/.cache/impressox/ref-venv
    ~/.cache/impressox/ref-venv/bin/pip install sentence-transformers
    ~/.cache/impressox/ref-venv/bin/python rag/tests/data/make_reference.py \
        ~/.cache/impressox/models/all-MiniLM-L6-v2

It reads corpus.json beside it and writes minilm_reference.json: the vectors as integers
(value × 10000, rounded), which keeps the file small and loses nothing a cosine of 0.999 can
see (rounding moves each component by at most 5e-5). CI never runs this: the vectors are
committed, and the test only reads them.
"""

import json
import pathlib
import sys

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

here = pathlib.Path(__file__).parent
model_dir = sys.argv[1]
corpus = json.loads((here / "corpus.json").read_text(encoding="utf-8"))
model = SentenceTransformer(model_dir, device="cpu")
vectors = model.encode(corpus, batch_size=32, convert_to_numpy=True)
out = {
    "model": "sentence-transformers/all-MiniLM-L6-v2",
    "made_by": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}",
    "max_seq_length": model.max_seq_length,
    "scale": 10000,
    "vectors": [[round(float(x) * 10000) for x in v] for v in vectors],
}
(here / "minilm_reference.json").write_text(
    json.dumps(out, separators=(",", ":")) + "\n", encoding="utf-8"
)
print(f"{len(corpus)} vectors of {vectors.shape[1]} dims, max_seq_length {model.max_seq_length}")
