"""The student-with-teacher training model: frozen teacher in inference mode, `DistillationTerms`.

Example:

>>> from modeling.image_text_fusion import fusion_features_classifier
>>> small = dict(num_classes=(3, 2), fusion_dim=8, fusion_heads=2)
>>> model = distillation_model(fusion_features_classifier(6, 5, name="s", **small),
...                            fusion_features_classifier(12, 10, name="t", **small), "vanilla")
>>> sorted(model.output)
['logits_location', 'logits_modality']
"""

import keras

from modeling.image_text_fusion.models import compile_classifier
from modeling.losses.distillation import DistillationTerms

TEACHER_PREFIX = "teacher_"


def _fresh_inputs(model, prefix):
    """New `keras.Input`s in the structure of ``model.input``, named ``prefix + name``."""
    make = lambda tensor: keras.Input(tensor.shape[1:], dtype=tensor.dtype, name=prefix + tensor.name)  # noqa: E731
    if isinstance(model.input, dict):
        return {key: make(tensor) for key, tensor in model.input.items()}
    return [make(tensor) for tensor in model.inputs]


def distillation_model(
    student,
    teacher,
    loss_type="combined",
    learning_rate=1e-4,
    train_teacher_projections=True,
    jit_compile="auto",
    **loss_weights,
):
    """A compiled model training ``student`` with CE on both tasks plus the distillation terms of ``loss_type``.

    Its inputs are the student's (same names) and the teacher's (prefixed ``teacher_``); the teacher is
    frozen (``trainable = False``) and called in inference mode. The optimizer is built once (the
    original rebuilt it every epoch, resetting its state). Save ``student`` itself after training.

    Args:
        student, teacher: `fusion_classifier` / `fusion_features_classifier` models.
        loss_type: "vanilla", "combined", "crd", "rkd" or "mmd".
        learning_rate: AdamW learning rate.
        train_teacher_projections: train the teacher-feature projections (the original: False).
        jit_compile: passed to ``compile``.
        **loss_weights: ``alpha``, ``beta``, ``gamma``, ``T``, ``w_dist``, ``w_angle``.
    """
    teacher.trainable = False
    student_inputs = _fresh_inputs(student, "")
    teacher_inputs = _fresh_inputs(teacher, TEACHER_PREFIX)
    terms = DistillationTerms(loss_type, train_teacher_projections, **loss_weights)
    logits = terms(student(student_inputs), teacher(teacher_inputs, training=False))
    flat = lambda inputs: {tensor.name: tensor for tensor in keras.tree.flatten(inputs)}  # noqa: E731
    model = keras.Model({**flat(student_inputs), **flat(teacher_inputs)}, logits, name=f"{student.name}_distillation")
    return compile_classifier(model, learning_rate, jit_compile=jit_compile)
