"""Finding nested sub-models by name and unfreezing their last weighted layers."""

import keras
import pytest

from modeling.backbones.submodels import find_submodel, unfreeze_backbone_layers, unfreeze_last_layers, weighted_layers

pytestmark = pytest.mark.multibackend


def encoder(name, batchnorm=False):
    layers = [keras.Input((4,)), keras.layers.Dense(5, name=f"{name}_0")]
    layers += [keras.layers.BatchNormalization(name=f"{name}_bn")] if batchnorm else []
    layers += [keras.layers.ReLU(), keras.layers.Dense(3, name=f"{name}_1"), keras.layers.Dense(2, name=f"{name}_2")]
    return keras.Sequential(layers, name=name)


def two_encoder_model():
    """``outer`` holds ``first`` directly and ``second`` inside ``wrapper``."""
    features = keras.Input((4,))
    wrapper_input = keras.Input((4,))
    wrapper = keras.Model(wrapper_input, encoder("second", batchnorm=True)(wrapper_input), name="wrapper")
    joined = keras.layers.Concatenate()([encoder("first")(features), wrapper(features)])
    return keras.Model(features, keras.layers.Dense(1)(joined), name="outer")


def test_find_submodel_by_name_at_any_depth():
    model = two_encoder_model()
    assert find_submodel(model, "first").name == "first"
    assert find_submodel(model, "second") is model.get_layer("wrapper").get_layer("second")
    assert find_submodel(model).name == "first"  # no "backbone": the first nested model


def test_find_submodel_prefers_the_backbone_and_lists_nested_models_when_missing():
    features = keras.Input((4,))
    other, backbone = encoder("other"), encoder("backbone")
    model = keras.Model(features, keras.layers.Concatenate()([other(features), backbone(features)]), name="m")
    assert find_submodel(model) is backbone
    with pytest.raises(
        ValueError, match=r"'m' has no nested model named 'missing'; nested models: \['other', 'backbone'\]"
    ):
        find_submodel(model, "missing")


def test_weighted_layers_leave_out_batchnorm_unless_asked():
    second = find_submodel(two_encoder_model(), "second")
    assert [layer.name for layer in weighted_layers(second)] == ["second_0", "second_1", "second_2"]
    assert [layer.name for layer in weighted_layers(second, freeze_batchnorm=False)] == [
        "second_0",
        "second_bn",
        "second_1",
        "second_2",
    ]


def test_unfreeze_last_layers_counts_from_the_top():
    model = two_encoder_model()
    second = find_submodel(model, "second")
    second.trainable = False
    assert unfreeze_last_layers(second, 2) == 4  # second_1 and second_2: kernel + bias each
    assert [layer.name for layer in second.layers if layer.trainable] == ["second_1", "second_2"]
    assert unfreeze_last_layers(second, 0) == 0
    assert unfreeze_last_layers(second, 99) == 6  # all three Dense layers; BatchNorm stays frozen
    assert not second.get_layer("second_bn").trainable
    assert unfreeze_last_layers(second, 99, freeze_batchnorm=False) == 8  # + gamma and beta
    assert len(find_submodel(model, "first").trainable_weights) == 6  # the other encoder is untouched
    with pytest.raises(ValueError, match=">= 0"):
        unfreeze_last_layers(second, -1)


def test_unfreeze_backbone_layers_takes_a_name():
    model = two_encoder_model()
    assert unfreeze_backbone_layers(model, n_layers=1, name="second") == 2
    assert [w.path.split("/")[-2] for w in find_submodel(model, "second").trainable_weights] == ["second_2"] * 2
