"""Parameter counts of the full-size teacher and student next to the reference's (195.9 M, 13.06 M).

Builds both models at 224 px / 256 tokens with random weights (offline) and writes
``benchmarks/results/image_text_fusion_parameters.json``. Run: ``python benchmarks/image_text_fusion_parameters.py``.
"""

import json
import pathlib
import time

from modeling import create_model

REFERENCE = {"teacher": 195.9e6, "student": 13.06e6}


def main():
    rows = {}
    for role, kwargs in {
        # Bio_ClinicalBERT has the cased BERT vocabulary (28,996 tokens)
        "teacher": dict(text_overrides={"vocabulary_size": 28996}),
        "student": dict(),
    }.items():
        start = time.time()
        model = create_model(f"image_text_fusion/{role}", num_classes=(6, 3), compile=False, **kwargs)
        parts = {layer.name: layer.count_params() for layer in model.layers if layer.count_params()}
        rows[role] = {
            "parameters": model.count_params(),
            "reference": REFERENCE[role],
            "ratio": model.count_params() / REFERENCE[role],
            "by_layer": parts,
            "build_seconds": round(time.time() - start, 1),
        }
        print(role, model.count_params(), "reference", REFERENCE[role])
    out = pathlib.Path(__file__).parent / "results" / "image_text_fusion_parameters.json"
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
