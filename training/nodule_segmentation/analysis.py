"""The attention-segmentation analyser: per-case metrics, alignment figures, a JSON summary and an overlay grid.

``python -m training.nodule_segmentation.analysis --model RUN/best.keras --data_dir DIR --output_dir OUT``
(console script ``analyze-nodule-segmentation``) runs a saved model on every pair under ``DIR``
(or the split lists given) and writes ``OUT/analysis.json``, ``OUT/analysis_cases.csv`` and
``OUT/overlays.png`` (image, ground truth, attention, segmentation per row).
"""

import argparse
from pathlib import Path

import keras
import matplotlib
import numpy as np
import pandas as pd

from training.cli import exit_on_user_errors
from training.nodule_segmentation.data import find_pairs, make_dataset, read_id_list
from training.nodule_segmentation.evaluation import alignment_metrics, case_metrics, summarize
from training.results import write_csv, write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def predict_pairs(model, pairs, batch_size=8):
    """``(images, masks, attention, probabilities)`` arrays ``(N, H, W)`` of ``pairs``."""
    size = model.inputs[-1].shape[1]
    parts = {"image": [], "mask": [], "attention": [], "probability": []}
    for inputs, masks in make_dataset(pairs, size, batch_size):
        out = model.predict_on_batch({i.name: np.asarray(inputs[i.name]) for i in model.inputs})
        parts["image"].append(np.asarray(inputs["drr"])[..., 0])
        parts["mask"].append(np.asarray(masks["segmentation"])[..., 0])
        parts["attention"].append(np.asarray(out["attention"])[..., 0])
        parts["probability"].append(1.0 / (1.0 + np.exp(-np.asarray(out["segmentation"], "float64")[..., 0])))
    return tuple(np.concatenate(parts[key]) for key in parts)


def analyze(model, pairs, batch_size=8):
    """Per-case rows (segmentation metrics, plus alignment figures for non-empty masks), the summary, the arrays."""
    images, masks, attention, probability = predict_pairs(model, pairs, batch_size)
    rows = []
    for pair, m, a, p in zip(pairs, masks, attention, probability, strict=True):
        row = {"case_id": pair.case_id, **case_metrics(m, p)}
        if m.any():
            row.update(alignment_metrics(m, a, p))
        rows.append(row)
    return rows, summarize(rows, masks.shape[1]), (images, masks, attention, probability)


def overlay_grid(images, masks, attention, probability, n=6):
    """A figure of ``n`` cases (rows): DRR, ground truth, attention, segmentation (GT contour in each)."""
    n = min(n, len(images))
    figure, axes = plt.subplots(n, 4, figsize=(10, 2.5 * n), squeeze=False)
    titles = ("DRR", "ground truth", "attention", "segmentation")
    for row in range(n):
        for col, (picture, cmap) in enumerate(
            ((images[row], "gray"), (masks[row], "gray"), (attention[row], "jet"), (probability[row], "jet"))
        ):
            axis = axes[row, col]
            axis.imshow(picture, cmap=cmap)
            if col and masks[row].any():
                axis.contour(masks[row], levels=[0.5], colors="white", linewidths=0.8)
            axis.set_axis_off()
            if row == 0:
                axis.set_title(titles[col])
    figure.tight_layout()
    return figure


def build_parser():
    parser = argparse.ArgumentParser(prog="analyze-nodule-segmentation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a saved model (.keras), e.g. RUN/best.keras")
    parser.add_argument("--data_dir", required=True, help="folder of <id>_drr.png / <id>_drr_mask.png pairs")
    parser.add_argument("--ids", help="optional file of case ids to analyse (one per line)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--n_overlays", type=int, default=6)
    parser.add_argument("--on_bad_pairs", choices=("raise", "skip"), default="raise")
    return parser


def run(argv=None):
    """The command; returns the summary dict."""
    args = build_parser().parse_args(argv)
    with exit_on_user_errors():
        if not Path(args.model).is_file():
            raise SystemExit(f"--model: no such file {args.model}")
        pairs, _ = find_pairs(args.data_dir, on_bad_pairs=args.on_bad_pairs)
        if args.ids:
            wanted = set(read_id_list(args.ids))
            pairs = [pair for pair in pairs if pair.case_id in wanted]
        model = keras.saving.load_model(args.model, safe_mode=True)
        rows, summary, arrays = analyze(model, pairs, args.batch_size)
        output = Path(args.output_dir)
        output.mkdir(parents=True, exist_ok=True)
        write_json(output / "analysis.json", summary)
        write_csv(output / "analysis_cases.csv", pd.DataFrame(rows))
        overlay_grid(*arrays, n=args.n_overlays).savefig(output / "overlays.png", dpi=80)
    print(", ".join(f"{k} = {v:.3f}" for k, v in summary.items() if isinstance(v, float) and "overlap" in k))
    return summary


def main(argv=None):
    run(argv)


if __name__ == "__main__":
    main()
