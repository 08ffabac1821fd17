"""The highest attention-segmentation correlation the segmentation head's grid allows (a script, not a test).

``python benchmarks/nodule_grid_bound.py [--sizes 64,128,192,256,512]``

The improved model's head sees only the ResNet's 1/32 grid (no skip connections), so its best
possible map is the ground truth averaged over the grid cells and upsampled bilinearly. For the
embedded dataset's test split at each size, this script reports the mean Pearson correlation of that
map with the ground truth itself, i.e. with a perfect attention map: the ceiling of the seed's
"attention-segmentation correlation" once the attention is sharp. Writes
``benchmarks/results/nodule_grid_bound.json``.
"""

import argparse
from pathlib import Path

import keras
import numpy as np

from modeling.nodule_segmentation.models import FEATURE_STRIDE
from training.nodule_segmentation.config import NoduleSegmentationConfig
from training.nodule_segmentation.data import make_dataset
from training.nodule_segmentation.evaluation import pearson
from training.nodule_segmentation.train import load_splits
from training.results import write_json


def grid_bound(masks, grid):
    """Mean correlation, over non-empty ``masks`` ``(N, S, S, 1)``, of each mask with itself through a ``grid``^2 grid."""
    size = masks.shape[1]
    coarse = keras.ops.image.resize(masks, (grid, grid), interpolation="area")
    through = keras.ops.convert_to_numpy(keras.ops.image.resize(coarse, (size, size), interpolation="bilinear"))
    values = [pearson(m, t) for m, t in zip(masks[..., 0], through[..., 0], strict=True) if m.any()]
    return float(np.mean(values))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,128,192,256,512")
    args = parser.parse_args(argv)
    splits, _ = load_splits(NoduleSegmentationConfig().validated())
    rows = {}
    for size in map(int, args.sizes.split(",")):
        masks = np.concatenate([np.asarray(y["segmentation"]) for _, y in make_dataset(splits["test"], size, 8)])
        rows[size] = {"grid": size // FEATURE_STRIDE, "correlation_bound": grid_bound(masks, size // FEATURE_STRIDE)}
    write_json(Path("benchmarks/results/nodule_grid_bound.json"), {"split": "test", "sizes": rows})
    print("| img_size | grid | highest attention-segmentation correlation |\n|---|---|---|")
    for size, row in rows.items():
        print(f"| {size} | {row['grid']}x{row['grid']} | {row['correlation_bound']:.3f} |")


if __name__ == "__main__":
    main()
