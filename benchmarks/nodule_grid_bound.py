"""How high the attention-segmentation correlation can go through the head's 1/32 grid (a script, not a test).

``python benchmarks/nodule_grid_bound.py [--sizes 64,128,192,256] [--steps 1500]``

The improved model's head sees only the ResNet's 1/32 grid (no skip connections): its output is
``sigmoid(bilinear_upsample(g x g logits))``. For the embedded dataset's test split at each size,
this script reports two mean Pearson correlations with the ground truth itself (a perfect attention
map), over the non-empty masks:

- ``area_bilinear``: the mask averaged over the grid cells and upsampled, i.e. a calibrated, blurred
  probability map;
- ``sigmoid_fit``: the head's own output form with its ``g x g`` logits fitted per mask by Adam
  (``--steps``) to maximise the correlation. A reachable value, so a lower bound of the ceiling:
  the sigmoid sharpens what the grid blurs.

TensorFlow backend (the fit uses ``tf.GradientTape``). Writes
``benchmarks/results/nodule_grid_bound.json``.
"""

import argparse
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from modeling.losses.segmentation import per_sample_pearson
from modeling.nodule_segmentation.models import FEATURE_STRIDE
from training.nodule_segmentation.config import NoduleSegmentationConfig
from training.nodule_segmentation.data import make_dataset
from training.nodule_segmentation.evaluation import pearson
from training.nodule_segmentation.train import load_splits
from training.results import write_json


def _mean_pearson(masks, maps):
    return float(np.mean([pearson(m, p) for m, p in zip(masks[..., 0], np.asarray(maps)[..., 0], strict=True)]))


def _head_output(logits, size):
    """The head's output form: ``sigmoid`` of the logits grid upsampled bilinearly to ``size``."""
    return tf.sigmoid(tf.image.resize(logits, (size, size), method="bilinear"))


def grid_bounds(masks, grid, steps):
    """Both correlations for non-empty ``masks`` ``(N, S, S, 1)`` through a ``grid``^2 grid."""
    size = masks.shape[1]
    coarse = tf.image.resize(masks, (grid, grid), method="area")
    area_bilinear = tf.image.resize(coarse, (size, size), method="bilinear")
    prior = tf.clip_by_value(coarse, 1e-3, 1 - 1e-3)
    logits = tf.Variable(tf.math.log(prior / (1 - prior)))
    optimizer = keras.optimizers.Adam(0.1)
    truth = tf.constant(masks)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(per_sample_pearson(_head_output(logits, size), truth))
        optimizer.apply_gradients([(tape.gradient(loss, logits), logits)])

    for _ in range(steps):
        step()
    fitted = _head_output(logits, size)
    return {"area_bilinear": _mean_pearson(masks, area_bilinear), "sigmoid_fit": _mean_pearson(masks, fitted)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,128,192,256")
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args(argv)
    splits, _ = load_splits(NoduleSegmentationConfig().validated())
    rows = {}
    for size in map(int, args.sizes.split(",")):
        masks = np.concatenate([np.asarray(y["segmentation"]) for _, y in make_dataset(splits["test"], size, 8)])
        masks = masks[masks.reshape(len(masks), -1).any(axis=1)]
        grid = size // FEATURE_STRIDE
        rows[size] = {"grid": grid, "n_masks": len(masks), **grid_bounds(masks, grid, args.steps)}
    write_json(Path("benchmarks/results/nodule_grid_bound.json"), {"split": "test", "steps": args.steps, "sizes": rows})
    print("| img_size | grid | area average, upsampled | sigmoid head, fitted |\n|---|---|---|---|")
    for size, row in rows.items():
        print(f"| {size} | {row['grid']}x{row['grid']} | {row['area_bilinear']:.3f} | {row['sigmoid_fit']:.3f} |")


if __name__ == "__main__":
    main()
