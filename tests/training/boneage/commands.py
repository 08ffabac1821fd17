"""Flags shared by the bone-age command tests: a tiny MobileNetV2 run on 64 px phantoms."""

TINY = [
    "--img_size",
    "64",
    "--backbone",
    "mobilenet_v2",
    "--weights",
    "none",
    "--dense_units",
    "16",
    "--gender_units",
    "8",
    "--batch_size",
    "8",
    "--tta_steps",
    "2",
    "--attention_every",
    "1",
]
