"""Reference vectors for the `static` embedder's equivalence test (rag/tests/static_embedder.rs).

Run once, by hand, with the encoder that the PyPI package tokenlearn-static-model ships
(its own Rust extension, called through `static_model.get_embeddings`):

    python3 -m venv ~/.cache/impressox/ref-venv
    ~/.cache/impressox/ref-venv/bin/pip install tokenlearn-static-model==0.1.1
    ~/.cache/impressox/ref-venv/bin/python rag/tests/data/make_static_reference.py

It reads corpus.json beside it and writes static_reference.json: the vectors as integers
(value x 10000, rounded), as make_reference.py does for the `local` embedder. The empty
text's vector is all zeros (no token). CI never runs this: the vectors are committed, and
the test only reads them.
"""

import importlib.metadata
import json
import pathlib

from static_model import get_embeddings

here = pathlib.Path(__file__).parent
corpus = json.loads((here / "corpus.json").read_text(encoding="utf-8"))
vectors = get_embeddings(corpus)
version = importlib.metadata.version("tokenlearn-static-model")
out = {
    "model": "tokenlearn-static-model",
    "made_by": f"tokenlearn-static-model {version} (static_model.get_embeddings)",
    "scale": 10000,
    "vectors": [[round(float(x) * 10000) for x in v] for v in vectors],
}
(here / "static_reference.json").write_text(
    json.dumps(out, separators=(",", ":")) + "\n", encoding="utf-8"
)
print(f"{len(corpus)} vectors of {len(vectors[0])} dims")
