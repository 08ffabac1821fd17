"""tf.data input pipelines: PNG/JPEG images normalised as ViTImageProcessor (mean = std = 0.5) and
WordPiece tokens from keras-hub (`BertTokenizer` + `MultiSegmentPacker`), teacher and student apart."""

import keras_hub
import numpy as np
import tensorflow as tf

RESERVED = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def word_piece_vocabulary(texts, size=1000):
    """A lower-cased WordPiece vocabulary computed from ``texts`` (the embedded data has no preset)."""
    data = tf.data.Dataset.from_tensor_slices(list(texts)).map(tf.strings.lower)
    return keras_hub.tokenizers.compute_word_piece_vocabulary(data, size, reserved_tokens=RESERVED)


def text_encoder(vocabulary, sequence_length=256):
    """A function ``texts -> {token_ids, segment_ids, padding_mask}`` (``vocabulary``: list or file path)."""
    tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    packer = keras_hub.layers.MultiSegmentPacker(
        sequence_length,
        start_value=tokenizer.token_to_id("[CLS]"),
        end_value=tokenizer.token_to_id("[SEP]"),
        pad_value=tokenizer.token_to_id("[PAD]"),
    )

    def encode(texts):
        token_ids, segment_ids = packer(tokenizer(texts))
        return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": tf.cast(token_ids != 0, "int32")}

    return encode


def load_image(path, image_size):
    image = tf.image.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.image.resize(tf.cast(image, "float32"), (image_size, image_size))
    return (image / 255.0 - 0.5) / 0.5


def dataset(
    paths, texts, labels, image_size, encoders, batch_size=16, shuffle=False, seed=0, blank=None, multiple_of=1
):
    """Batches of ``(inputs, {logits_modality, logits_location})``.

    Args:
        encoders: ``{input prefix: text_encoder}``: ``{"": student}`` or ``{"": student, "teacher_": teacher}``.
        blank: "image" (all zeros) or "text" (an empty caption): single-modality baselines.
        multiple_of: every batch's size must divide by it (the replicas): a shuffled (training) split
            drops its last partial batch; other splits repeat their last sample (trim the predictions).
    """
    paths, texts, labels = list(paths), list(texts), tuple(np.asarray(task) for task in labels)
    extra = -len(paths) % multiple_of if not shuffle else 0
    if extra:
        paths, texts = paths + paths[-1:] * extra, texts + texts[-1:] * extra
        labels = tuple(np.concatenate([task, np.repeat(task[-1:], extra)]) for task in labels)
    data = tf.data.Dataset.from_tensor_slices((paths, texts, labels))
    if shuffle:
        data = data.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)

    def prepare(path, text, task_labels):
        image = load_image(path, image_size)
        if blank == "image":
            image = tf.zeros_like(image)
        if blank == "text":
            text = tf.constant("")
        inputs = {"images": image}
        for prefix, encoder in encoders.items():
            inputs.update({prefix + key: value[0] for key, value in encoder(text[None]).items()})
            if prefix:
                inputs[prefix + "images"] = image
        return inputs, {"logits_modality": task_labels[0], "logits_location": task_labels[1]}

    batches = data.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return batches.batch(batch_size, drop_remainder=shuffle and multiple_of > 1).prefetch(2)
