"""`--distribute data_parallel` on two logical CPU devices (JAX), configured by the original's YAML layout."""

import json

from tests.checkers import run_on_two_jax_cpu_devices

TINY_YAML = """
teacher: {fusion_dim: 8, fusion_heads: 2, vision_layers: 1, text_layers: 1}
student: {fusion_dim: 8, fusion_heads: 2}
training: {teacher_epochs: 1, student_epochs: 1, batch_size: 8}
data: {samples: 46, image_size: 16, patch_size: 8, max_length: 8, vocabulary_size: 60}
"""


def test_data_parallel_on_two_logical_cpu_devices(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    argv = [
        "--config",
        str(tmp_path / "tiny.yaml"),
        "--distribute",
        "data_parallel",
        "--output_dir",
        str(tmp_path / "r"),
    ]
    run_on_two_jax_cpu_devices(["-m", "training.image_text_fusion.train", *argv])
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert (results["facts"]["distribute"], results["facts"]["replicas"], results["facts"]["backend"]) == (
        "data_parallel",
        2,
        "jax",
    )
    # 46 samples: 32 train, 7 dev, 7 test; the test split is padded to 8 for the 2 replicas, then trimmed
    for model in ("teacher", "student"):
        assert [sum(map(sum, results[model][task]["confusion_matrix"])) for task in ("type", "severity")] == [7, 7]
