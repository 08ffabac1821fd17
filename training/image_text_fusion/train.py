"""Train the teacher, then the student with distillation; select by mean dev macro F1; test.

Python API: ``train(FusionConfig(...))`` returns the results dict (also ``results.json``). Command:
``python -m training.image_text_fusion.train [--preset cpu|original] [--config run.yaml] [--flags]``.
A killed run resumes from its last epoch (``TrainingStateBackup``) when started again with the same
settings and ``--output_dir``.
"""

import argparse
import json
import shutil

import keras
import numpy as np

from callbacks import with_training_state
from modeling.image_text_fusion import LOGITS, fusion_classifier
from modeling.image_text_fusion.distillation import TEACHER_PREFIX, distillation_model
from training.cli import add_preset_and_verbose_arguments, add_scale_out_arguments, exit_on_user_errors
from training.distribution import dtype_policy, mixed_precision_policy
from training.image_text_fusion.config import BACKBONES, FusionConfig
from training.image_text_fusion.data import SPLITS, encode, label_maps, read_medpix_split, read_wound_split
from training.image_text_fusion.metrics import task_metrics
from training.image_text_fusion.pipeline import dataset, text_encoder, word_piece_vocabulary
from training.image_text_fusion.synthetic import write_synthetic_wound
from training.results import write_json
from training.run_directory import RunDirectory

COMMAND = "train-image-text-fusion"
RESUME_INDEPENDENT = {"output_dir", "overwrite", "verbose"}


def build_model(config, role, num_classes, vocabulary_size):
    """The teacher or student `fusion_classifier` of ``config`` (``role``: "teacher" or "student")."""
    get = lambda key: getattr(config, f"{role}_{key}")  # noqa: E731
    vision, vision_size = BACKBONES[get("vision")]
    text, text_size = BACKBONES[get("text")]
    vision_overrides = {"patch_size": config.patch_size}
    if get("vision_layers"):
        vision_overrides["num_layers"] = get("vision_layers")
    text_overrides = {"vocabulary_size": vocabulary_size}
    if get("text_layers"):
        text_overrides["num_layers"] = get("text_layers")
    fusion_params = dict(
        hidden_mult=config.hidden_mult,
        p_img=config.p_img,
        p_txt=config.p_txt,
        inference_routing=config.inference_routing,
    )
    return fusion_classifier(
        num_classes,
        vision,
        vision_size,
        None,
        text,
        text_size,
        None,
        config.image_size,
        config.max_length,
        vision_overrides,
        text_overrides,
        name=role,
        fusion_type=config.fusion_type,
        fusion_dim=get("fusion_dim"),
        fusion_heads=get("fusion_heads"),
        fusion_layers=get("fusion_layers"),
        dropout=get("dropout"),
        fusion_params=fusion_params,
    )


def read_splits(config, run):
    """Parsed rows per split (the embedded data is written into the run folder when no root is given)."""
    root = config.data_root
    if root is None:
        root = run.folder("embedded_data")
        if not (root / "metadata.csv").is_file():
            write_synthetic_wound(root, config.samples, image_size=max(config.image_size, 32), seed=config.seed)
    reader = read_wound_split if config.dataset == "wound" else read_medpix_split
    return {split: reader(root, split)[0] for split in SPLITS}


class DevSelection(keras.callbacks.Callback):
    """After each epoch: mean macro F1 of both tasks on dev; the best model is saved to ``path``.

    Its state (the best score) is kept by `TrainingStateBackup` across a kill.
    """

    def __init__(self, model_to_save, dev_data, dev_labels, path):
        super().__init__()
        self.model_to_save, self.dev_data, self.dev_labels, self.path = model_to_save, dev_data, dev_labels, path
        self.best = -1.0

    def get_state(self):
        return {"best": self.best}

    def set_state(self, state):
        self.best = state["best"]

    def on_epoch_end(self, epoch, logs=None):
        predictions = predict(self.model_to_save, self.dev_data, len(self.dev_labels[0]))
        score = float(
            np.mean([task_metrics(y, predictions[n])["macro_f1"] for y, n in zip(self.dev_labels, LOGITS, strict=True)])
        )
        if logs is not None:
            logs["dev_mean_macro_f1"] = score
        if score > self.best:
            self.best = score
            self.model_to_save.save(self.path)


def phase_callbacks(run, phase, tracked=()):
    """The callbacks of one phase ("teacher" or "student"): ``tracked`` (their state survives a kill), the
    history CSV, then a `TrainingStateBackup` in ``backup_<phase>/`` (kept after ``fit``: `train` removes it
    once the phase's result is saved, so a kill in between does not redo the phase)."""
    logger = keras.callbacks.CSVLogger(str(run.file(f"logs/{phase}_history.csv")), append=True)
    return with_training_state([*tracked, logger], run.folder(f"backup_{phase}"), delete_checkpoint=False)


def predict(model, data, count):
    """The model's outputs on ``data``, without the padding `dataset` added (the first ``count`` rows)."""
    return {name: value[:count] for name, value in model.predict(data, verbose=0).items()}


def evaluate(model, data, labels, task_names):
    predictions = predict(model, data, len(labels[0]))
    return {
        task: task_metrics(y, predictions[name]) for task, name, y in zip(task_names, LOGITS, labels, strict=True)
    }, predictions


def train(config):
    """Run the teacher-then-student training of ``config`` (a `FusionConfig`); returns the results."""
    config = config.validated()
    # first: joining other processes must precede any other use of the devices
    dist = config.start_distribution(config.batch_size)
    keras.utils.set_random_seed(config.seed)
    run = RunDirectory(config.output_dir, COMMAND, config.to_dict(), config.overwrite, RESUME_INDEPENDENT)
    rows = read_splits(config, run)
    maps = label_maps(rows["train"], {"dev": rows["dev"], "test": rows["test"]})
    write_json(run.file("labels.json"), {"task1": list(maps[0]), "task2": list(maps[1])})
    splits = {split: encode(rows[split], maps) for split in SPLITS}
    vocabulary = word_piece_vocabulary(splits["train"][1], config.vocabulary_size)
    run.file("vocabulary.txt").write_text("\n".join(vocabulary) + "\n")
    encoder = text_encoder(vocabulary, config.max_length)
    num_classes = (len(maps[0]), len(maps[1]))
    blank = {"both": None, "image": "text", "text": "image"}[config.modalities]

    def make(split, encoders, shuffle=False):
        paths, texts, *labels = splits[split]
        return dataset(paths, texts, labels, config.image_size, encoders, config.batch_size, shuffle, config.seed,
                       blank=blank, multiple_of=dist.replicas)  # fmt: skip

    verbose = 2 if config.verbose else 0
    policy = mixed_precision_policy() if config.mixed_precision else None
    with dtype_policy(policy), dist.scope():
        results = _fit_and_test(config, run, splits, encoder, vocabulary, num_classes, make, verbose)
    results["facts"] = dist.facts() | {"mixed_precision": policy, "jit_compile": config.jit_compile}
    write_json(run.file("results.json"), results)
    shutil.rmtree(run.folder("backup_student"), ignore_errors=True)
    run.finish(dev_mean_macro_f1=results["dev_mean_macro_f1"])
    return results


def _teacher(config, run, num_classes, vocabulary, make, encoder, verbose):
    """The given teacher (``teacher_model``), the one this run saved, or a new one trained now."""
    if config.teacher_model:
        return keras.saving.load_model(config.teacher_model, safe_mode=True)
    teacher_path = run.file("teacher.keras")
    if teacher_path.is_file():
        return keras.saving.load_model(teacher_path, safe_mode=True)
    teacher = build_model(config, "teacher", num_classes, len(vocabulary))  # the original: no validation
    teacher.optimizer.learning_rate = config.teacher_lr
    teacher.fit(
        make("train", {"": encoder}, True),
        epochs=config.teacher_epochs,
        callbacks=phase_callbacks(run, "teacher"),
        verbose=verbose,
    )
    teacher.save(teacher_path)
    shutil.rmtree(run.folder("backup_teacher"), ignore_errors=True)
    return teacher


def _fit_and_test(config, run, splits, encoder, vocabulary, num_classes, make, verbose):
    teacher = _teacher(config, run, num_classes, vocabulary, make, encoder, verbose)
    student = build_model(config, "student", num_classes, len(vocabulary))
    weights = {k: getattr(config, k) for k in ("alpha", "beta", "gamma", "T") if getattr(config, k) is not None}
    distiller = distillation_model(
        student,
        teacher,
        config.loss_type,
        config.student_lr,
        config.train_teacher_projections,
        config.jit_compile_argument,
        **weights,
    )
    dev = make("dev", {"": encoder})
    best_path = run.file("best_student.keras")
    selection = DevSelection(student, dev, splits["dev"][2:], best_path)
    distiller.fit(
        make("train", {"": encoder, TEACHER_PREFIX: encoder}, True),
        epochs=config.student_epochs,
        callbacks=phase_callbacks(run, "student", [selection]),
        verbose=verbose,
    )

    best = keras.saving.load_model(best_path, safe_mode=True)
    test = make("test", {"": encoder})
    names = ("type", "severity") if config.dataset == "wound" else ("modality", "location")
    results = {"dev_mean_macro_f1": selection.best}
    results["student"], predictions = evaluate(best, test, splits["test"][2:], names)
    results["teacher"], _ = evaluate(teacher, test, splits["test"][2:], names)
    np.savez(
        run.file("test_predictions.npz"),
        **{n: predictions[n] for n in LOGITS},
        labels_task1=splits["test"][2],
        labels_task2=splits["test"][3],
    )
    return results


def command_parser(description):
    """The flags the commands share: ``--config`` (the original's YAML), ``--preset``, ``--output_dir``,
    ``--overwrite``, ``--modalities``, ``--teacher_model`` and the shared scale-out flags."""
    parser = argparse.ArgumentParser(description=description)
    add_preset_and_verbose_arguments(parser, FusionConfig.PRESETS)
    add_scale_out_arguments(parser)
    parser.add_argument(
        "--config", help="a YAML file in the original's layout (teacher/student/fusion/loss/training/data)"
    )
    parser.add_argument("--output_dir", default=FusionConfig.output_dir)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--modalities", choices=("both", "image", "text"), help="image/text: single-modality baseline")
    parser.add_argument("--teacher_model", help="a trained teacher (.keras) to distil from: no teacher phase")
    return parser


def config_from_args(args, own=()):
    """The validated `FusionConfig` of parsed `command_parser` flags (``own``: the caller's other flags)."""
    skipped = ("config", "preset", *own)
    overrides = {k: v for k, v in vars(args).items() if k not in skipped and v is not None}
    if args.config:
        config = FusionConfig.from_yaml(args.config, args.preset)
        return FusionConfig(**{**config.to_dict(), **overrides}).validated()
    return FusionConfig.from_preset(args.preset, **overrides).validated()


def run(argv=None):
    """The command line (`command_parser`); prints the selected student's test metrics."""
    args = command_parser(__doc__.splitlines()[0]).parse_args(argv)
    with exit_on_user_errors():
        results = train(config_from_args(args))
    print(
        json.dumps(
            {
                "dev_mean_macro_f1": results["dev_mean_macro_f1"],
                "student": {
                    t: {k: v for k, v in m.items() if k != "confusion_matrix"} for t, m in results["student"].items()
                },
            },
            indent=1,
        )
    )
    return results


def main():
    run()


if __name__ == "__main__":
    main()
