"""Where the three splits live: explicit CSV/image paths, an RSNA-layout folder, or the phantom."""

import dataclasses
import json
import time
from pathlib import Path

from training.boneage import phantom
from training.boneage.tables import DataError, read_table

# File names of the RSNA Pediatric Bone Age release (and of the phantom, which copies them).
RSNA_FILES = {
    "train": (phantom.TRAIN_CSV, phantom.TRAIN_IMAGES),
    "val": (phantom.VAL_CSV, phantom.VAL_DIR),
    "test": (phantom.TEST_CSV, phantom.TEST_DIR),
}
DEFAULT_PHANTOM_DIR = Path("data") / "phantom"


@dataclasses.dataclass
class Split:
    """One split's CSV, image folder and the checked table read from them."""

    name: str
    csv: Path
    image_dir: Path
    table: object = None
    report: object = None


def rsna_split_paths(root, split):
    """CSV and image folder of ``split`` in an RSNA-layout folder.

    Kaggle's copy nests the training images one level deeper
    (``boneage-training-dataset/boneage-training-dataset/``); both are accepted.
    """
    csv_name, image_name = RSNA_FILES[split]
    root = Path(root)
    image_dir = root / image_name
    nested = image_dir / Path(image_name).name
    if nested.is_dir():
        image_dir = nested
    return root / csv_name, image_dir


def ensure_phantom(data_dir, n_train, n_val, n_test, img_size, seed, builder=True, wait_seconds=3600):
    """Build the phantom dataset once; later calls reuse it if its settings match.

    Args:
        data_dir: folder of the dataset (RSNA layout plus ``manifest.json``).
        n_train, n_val, n_test, img_size, seed: the `training.boneage.phantom.make_dataset` settings.
        builder: ``False`` in the other processes of a multi-process run: wait (up to
            ``wait_seconds``) for process 0 to finish a dataset with these settings.
    """
    data_dir = Path(data_dir)
    wanted = {"n_train": n_train, "n_val": n_val, "n_test": n_test, "img_size": img_size, "seed": seed}
    deadline = time.monotonic() + wait_seconds
    while True:
        arguments = _phantom_settings(data_dir / phantom.MANIFEST)
        if arguments is not None and all(arguments.get(key) == value for key, value in wanted.items()):
            return data_dir
        if builder:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"Gave up after {wait_seconds} s waiting for process 0 to build {data_dir} with {wanted}.")
        time.sleep(2)
    if arguments is not None:
        print(f"Rebuilding {data_dir}: its settings {arguments} differ from {wanted}.")
    print(f"Generating the synthetic hand-radiograph dataset in {data_dir} ...")
    phantom.make_dataset(data_dir, overwrite=True, **wanted)
    return data_dir


def use_default_phantom(args, splits=("train", "val", "test"), builder=True):
    """Point ``args.data_dir`` at the default phantom (building it once) when no data was given.

    Args:
        args: parsed training flags (``data_dir``, per-split ``<split>_csv``, ``phantom_n_*``,
            ``img_size``, ``seed``).
        splits: the splits the command reads; a CSV given for any of them means data was given.
        builder: ``False`` in the other processes of a multi-process run (see `ensure_phantom`).
    """
    if any(getattr(args, f"{split}_csv", None) for split in splits) or args.data_dir:
        _warn_if_cpu_preset_on_real_data(args)
        return
    args.data_dir = str(
        ensure_phantom(
            DEFAULT_PHANTOM_DIR,
            args.phantom_n_train,
            args.phantom_n_val,
            args.phantom_n_test,
            args.img_size,
            args.seed,
            builder=builder,
        )
    )


def _warn_if_cpu_preset_on_real_data(args):
    """The CPU preset is sized for the phantom: say so when it meets other data with its small settings."""
    is_phantom = args.data_dir and (Path(args.data_dir) / phantom.MANIFEST).is_file()
    if getattr(args, "preset", None) != "cpu" or is_phantom or args.weights is not None or args.img_size > 224:
        return
    print(
        f"Warning: --preset cpu trains {args.backbone} from random weights at {args.img_size} px, sized for the "
        "embedded phantom. For real radiographs use --preset original (Xception, ImageNet weights, 500 px), "
        "or set --weights imagenet and a larger --img_size."
    )


def _phantom_settings(manifest_path):
    """The settings a phantom manifest records, or ``None`` without a manifest."""
    if not manifest_path.exists():
        return None
    return json.loads(manifest_path.read_text()).get("arguments", {})


def phantom_error_floor(args, split):
    """The phantom's error floor (months) on ``split``, or ``None`` when the split is not a phantom's.

    ``args`` needs ``data_dir`` and ``<split>_csv``: a CSV given for the split means other data.

    >>> import types
    >>> phantom_error_floor(types.SimpleNamespace(data_dir=None, test_csv=None), "test") is None
    True
    """
    if not args.data_dir or getattr(args, f"{split}_csv", None):
        return None
    manifest = Path(args.data_dir) / phantom.MANIFEST
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text())["splits"][split]["error_floor_mae_months"]


def load_splits(args, names=("train", "val", "test")):
    """Read the splits named by the command-line arguments into checked tables.

    ``args`` needs ``data_dir`` and, per split, optional ``<split>_csv`` / ``<split>_images``
    overrides, plus the column options ``layout``, ``id_column``, ``age_column``,
    ``sex_column``, ``filename_column``, ``image_extension`` and ``on_bad_rows``.
    """
    splits = {}
    for name in names:
        csv, image_dir = rsna_split_paths(args.data_dir, name) if args.data_dir else (None, None)
        csv = Path(getattr(args, f"{name}_csv", None) or csv or "")
        image_dir = Path(getattr(args, f"{name}_images", None) or image_dir or "")
        if not str(csv) or str(csv) == ".":
            raise DataError(f"No CSV for the {name} split: pass --data_dir or --{name}_csv.")
        table, report = read_table(csv, image_dir, **column_options(args))
        repeated = table["id"][table["id"].duplicated()].unique()
        if len(repeated):
            print(
                f"Warning: {csv}: {int(table['id'].duplicated().sum())} rows repeat an image id already in this "
                f"split (ids {', '.join(map(str, repeated[:5]))}); each is used as often as it is listed."
            )
        splits[name] = Split(name, csv, image_dir, table, report)
    if not getattr(args, "allow_shared_images", False):
        check_splits_share_no_image(splits)
    return splits


def check_splits_share_no_image(splits):
    """Refuse an image file listed in two splits (a test image in training leaks the answer).

    Raises:
        DataError: naming both CSVs and the first shared images.
    """
    seen = {}
    for split in splits.values():
        paths = {Path(path).resolve() for path in split.table["path"]}
        for other, (other_csv, other_paths) in seen.items():
            shared = sorted(paths & other_paths)
            if shared:
                raise DataError(
                    f"{len(shared)} images are listed in both the {other} split ({other_csv}) and the {split.name} "
                    f"split ({split.csv}), e.g. {', '.join(str(path) for path in shared[:3])}. Remove them from one "
                    "split, or pass --allow_shared_images if that is intended."
                )
        seen[split.name] = (split.csv, paths)


def add_data_arguments(parser, splits=("train", "val", "test")):
    """The data flags shared by the training, evaluation and sweep commands."""
    group = parser.add_argument_group("data")
    group.add_argument("--data_dir", help="folder in the RSNA layout (default: the generated phantom)")
    for name in splits:
        group.add_argument(f"--{name}_csv", help=f"CSV of the {name} split (overrides --data_dir)")
        group.add_argument(f"--{name}_images", help=f"image folder of the {name} split")
    group.add_argument(
        "--allow_shared_images",
        action="store_true",
        help="allow one image file in two splits (refused by default: it leaks evaluation images into training)",
    )
    add_column_arguments(group)
    return group


def add_column_arguments(group):
    """The flags that say how to read a CSV (layout, column names, bad-row handling)."""
    group.add_argument("--layout", default="auto", help="auto, rsna_train, rsna_val, rsna_test, original or custom")
    group.add_argument("--id_column", help="column holding the image id")
    group.add_argument("--age_column", help="column holding bone age in months")
    group.add_argument("--sex_column", help="column holding sex (M/F, male/female, True/False, 1/0)")
    group.add_argument("--filename_column", help="column holding image file names (else <id><ext>)")
    group.add_argument("--image_extension", default=".png")
    group.add_argument(
        "--on_bad_rows",
        choices=("raise", "skip"),
        default="raise",
        help="stop at the first bad row (default) or skip bad rows and count them in the report",
    )


def column_options(args):
    """`read_table` keyword arguments from the flags of `add_column_arguments`."""
    return dict(
        layout=args.layout,
        id_column=args.id_column,
        age_column=args.age_column,
        sex_column=args.sex_column,
        filename_column=args.filename_column,
        image_extension=args.image_extension,
        on_error=args.on_bad_rows,
    )
