"""Company-classifier probes: why the CPU preset's embedding pretraining stayed at chance (version-1 phantom).

Each probe trains one company classifier on the embedded implant data (a phantom of ``--n_train``
training images at 96 px, 80 validation images) and reports training and validation accuracy per
epoch. ``--arch vit`` is the project's `embedding_classifier` (ViT class token, the reference's
head 512 -> E with ReLU and dropout, Linear E -> classes), ``--arch cnn`` a three-block CNN used as
a control. ``--augment`` toggles the reference's training transforms (random resized crop, flip,
rotation, brightness, contrast); off, training images get the validation transform. For the ViT,
the probe also counts the embedding units that are still active on validation images after
training (a ReLU that is 0 for every image is dead and passes no gradient).

    python benchmarks/implant_pretraining.py --arch vit --embed_dim 32 --no-augment
    python benchmarks/implant_pretraining.py --arch cnn --image_size 96

Appends one JSON line per probe to ``benchmarks/results/implant_pretraining.jsonl``.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import keras
import numpy as np

from modeling.implant_dimensions import embedding_classifier
from training.implant_dimensions.config import ImplantConfig
from training.implant_dimensions.data import label_indices, make_dataset, read_split, vocabularies
from training.implant_dimensions.phantom import make_phantom
from training.implant_dimensions.train import _optimizer, _schedule

RESULTS = Path(__file__).resolve().parent / "results" / "implant_pretraining.jsonl"


def control_cnn(image_size, classes):
    """Three Conv 3x3 + ReLU + MaxPool blocks (16, 32, 64 filters), global average pool, Dense."""
    image = keras.Input((image_size, image_size, 3))
    x = image
    for filters in (16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    return keras.Model(image, keras.layers.Dense(classes)(keras.layers.GlobalAveragePooling2D()(x)))


def active_embedding_units(model, images):
    """How many of the embedding's ReLU units are > 0 for at least one of ``images``."""
    embedding = model.get_layer("embedding")
    probe = keras.Model(embedding.input, embedding.get_layer("head_dense_2").output)
    return int((probe.predict(images, verbose=0) > 0).any(axis=0).sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=("vit", "cnn"), default="vit")
    parser.add_argument("--n_train", type=int, default=1200)
    parser.add_argument("--image_size", type=int, default=48)
    parser.add_argument("--patch_size", type=int, default=8)
    parser.add_argument("--embed_dim", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--data_dir", default=None, help="phantom folder (default: /tmp/implant_phantom_<n_train>)")
    args = parser.parse_args()
    root = make_phantom(args.data_dir or f"/tmp/implant_phantom_{args.n_train}", n_train=args.n_train)
    splits = {name: read_split(root / f"{name}.json", name=name) for name in ("train", "val")}
    vocabulary = vocabularies(splits["train"], splits["val"])["company"]
    keras.utils.set_random_seed(0)
    # The CPU preset's optimizer, schedule (2 warmup epochs, then cosine) and small ViT (2 layers, width 64).
    config = ImplantConfig(patch_size=args.patch_size, epochs=args.epochs, pretrain_lr=args.lr)
    if args.arch == "vit":
        model = embedding_classifier(
            num_classes=len(vocabulary),
            image_size=args.image_size,
            model_size="tiny",
            embed_dim=args.embed_dim,
            vit_overrides=config.vit_overrides,
        )
    else:
        model = control_cnn(args.image_size, len(vocabulary))
    model.compile(
        _optimizer(config, args.lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1),
        metrics=["accuracy"],
    )
    data = {
        name: make_dataset(
            split.table,
            args.image_size,
            32,
            labels=label_indices(split.table, vocabulary, "company"),
            training=name == "train" and args.augment,
            strong_augmentation=True,
        )
        for name, split in splits.items()
    }
    schedule = _schedule(config, args.epochs, args.lr)
    started = time.time()
    history = model.fit(data["train"], validation_data=data["val"], epochs=args.epochs, verbose=2, callbacks=[schedule])
    row = {
        **vars(args),
        "fit_seconds": round(time.time() - started, 1),
        "train_accuracy": [round(float(a), 3) for a in history.history["accuracy"]],
        "val_accuracy": [round(float(a), 3) for a in history.history["val_accuracy"]],
        "best_val_accuracy": float(max(history.history["val_accuracy"])),
        "chance": 1 / len(vocabulary),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPU cores",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if args.arch == "vit":
        images = np.concatenate([np.asarray(x) for x, _ in data["val"]])
        row["active_embedding_units"] = active_embedding_units(model, images)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as file:
        file.write(json.dumps(row) + "\n")
    print(json.dumps({k: row[k] for k in ("arch", "image_size", "embed_dim", "augment", "best_val_accuracy")}))


if __name__ == "__main__":
    main()
