"""The volume-fusion models: layer sizes of the reference, fusion modes, probability averaging."""

import keras
import numpy as np
import pytest

from modeling import create_model, list_models
from modeling.volume_fusion import ProbabilityAverage, learned_feature_fusion_3d
from tests.checkers import run_serialization_test
from tests.modeling.volume_fusion.tiny import TINY, batch, build

# Layer sizes and fusion arithmetic do not depend on the backend; the registry test builds, trains
# and reloads every model on TensorFlow and JAX. The layers' numerics run on both.


def test_every_results_table_column_has_a_registered_model():
    assert list_models("volume_fusion") == [
        "volume_fusion/feature_fusion",
        "volume_fusion/image_only",
        "volume_fusion/learned_feature_fusion",
        "volume_fusion/learned_feature_fusion_variant",
        "volume_fusion/metadata_only",
        "volume_fusion/probability_fusion",
    ]


def test_learned_fusion_layer_sizes_follow_the_reference():
    model = learned_feature_fusion_3d((8, 8, 8, 1), backbone={"depth": 50, "widen_factor": 1 / 64})
    assert model.get_layer("backbone").output.shape == (None, 32)  # 512 / 64 * 4 (2048 at full width)
    sizes = {name: model.get_layer(name).output.shape[-1] for name in ("image_fc", "metadata_fc1", "metadata_fc2")}
    assert sizes == {"image_fc": 512, "metadata_fc1": 1024, "metadata_fc2": 512}
    assert model.get_layer("fusion_concat").output.shape == (None, 1024)
    assert model.get_layer("classifier_fc1").output.shape == (None, 512)
    assert [model.get_layer(n).rate for n in ("classifier_dropout1", "logit_dropout")] == [0.25, 0.25]


@pytest.mark.parametrize("fusion, width", [("add", 8), ("multiply", 8), ("concat", 16)])
def test_fusion_modes_combine_the_two_embeddings(fusion, width):
    model = build("volume_fusion/learned_feature_fusion", fusion=fusion)
    assert model.get_layer(f"fusion_{fusion}").output.shape == (None, width)
    inputs, _ = batch(model, size=3)
    image = keras.Model(model.input, [model.get_layer("image_fc").output, model.get_layer("metadata_fc2").output])
    first, second = (keras.ops.convert_to_numpy(t) for t in image(inputs))
    fused = keras.ops.convert_to_numpy(keras.Model(model.input, model.get_layer(f"fusion_{fusion}").output)(inputs))
    expected = {"add": first + second, "multiply": first * second, "concat": np.concatenate([first, second], 1)}
    np.testing.assert_allclose(fused, expected[fusion], rtol=1e-6)


def test_single_source_models_take_only_their_input():
    image = build("volume_fusion/image_only")
    metadata = build("volume_fusion/metadata_only")
    assert list(image.input) == ["volume"] and list(metadata.input) == ["metadata"]
    inputs, _ = batch(build("volume_fusion/learned_feature_fusion"), size=2)
    for model in (image, metadata):
        assert model.predict({name: inputs[name] for name in model.input}, verbose=0).shape == (2, 1)


@pytest.mark.multibackend
def test_probability_fusion_averages_the_two_probabilities():
    rng = np.random.default_rng(0)
    a, b = rng.normal(scale=5, size=(2, 6, 1)).astype("float32")
    got = keras.ops.convert_to_numpy(ProbabilityAverage()([a, b]))
    p = (1 / (1 + np.exp(-a.astype("float64"))) + 1 / (1 + np.exp(-b.astype("float64")))) / 2
    np.testing.assert_allclose(got, np.log(p / (1 - p)), rtol=1e-5, atol=1e-5)
    run_serialization_test(ProbabilityAverage())


@pytest.mark.multibackend
def test_metadata_is_standardised_inside_the_model_when_statistics_are_given():
    model = create_model("volume_fusion/metadata_only", metadata_mean=[10, 0, 0, 0], metadata_variance=[4, 1, 1, 1])
    layer = keras.Model(model.input, model.get_layer("metadata_normalization").output)
    got = keras.ops.convert_to_numpy(layer({"metadata": np.array([[14.0, 1, 0, 1]], "float32")}))
    np.testing.assert_allclose(got, [[2.0, 1, 0, 1]], rtol=1e-6)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="`fusion` must be one of"):
        learned_feature_fusion_3d(TINY["volume_shape"], fusion="sum", backbone=TINY["backbone"])
    with pytest.raises(ValueError, match="needs meta_units"):
        learned_feature_fusion_3d(TINY["volume_shape"], fusion="add", meta_units=(16, 8), backbone=TINY["backbone"])
