"""The implant-dimension models: named outputs, `.keras` round trips, pretrained weights, the ViT blocks."""

import keras
import numpy as np
import pytest

from modeling.implant_dimensions import (
    DIMENSIONS,
    baseline_regression,
    dual_embedding_regression,
    embedding_classifier,
    embedding_model,
    single_embedding_regression,
)
from modeling.implant_dimensions.convert import qualified_weights
from tests.modeling.implant_dimensions.tiny import IMAGE_SIZE, TINY_VIT

pytestmark = pytest.mark.multibackend

IMAGES = np.random.default_rng(0).normal(size=(3, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
SMALL = dict(image_size=IMAGE_SIZE, model_size="tiny", vit_overrides=TINY_VIT)


@pytest.mark.parametrize(
    ("attention_type", "outputs"),
    [
        ("dual", {"attention_weights": 2}),
        ("triple", {"attention_weights": 3}),
        ("hierarchical", {"embed_attention_weights": 2, "feature_attention_weights": 2}),
        ("none", {}),
    ],
)
def test_attention_weights_are_named_softmax_outputs_that_survive_a_round_trip(attention_type, outputs, tmp_path):
    model = dual_embedding_regression(company_embed_dim=8, model_embed_dim=4, attention_type=attention_type, **SMALL)
    predicted = model.predict(IMAGES, verbose=0)
    assert set(predicted) == {DIMENSIONS, *outputs}
    assert predicted[DIMENSIONS].shape == (3, 2)
    for name, sources in outputs.items():
        assert predicted[name].shape == (3, sources)
        np.testing.assert_allclose(predicted[name].sum(axis=1), 1.0, rtol=1e-5)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    again = reloaded.predict(IMAGES, verbose=0)
    for name in predicted:
        np.testing.assert_array_equal(again[name], predicted[name])


def test_one_target_tasks_have_one_output_and_single_embedding_weighs_two_sources():
    assert dual_embedding_regression(task="length", **SMALL).output[DIMENSIONS].shape == (None, 1)
    single = single_embedding_regression(embed_dim=8, **SMALL)
    assert single.output["attention_weights"].shape == (None, 2)


def test_every_weight_of_a_pretrained_embedding_model_arrives_in_the_regressor():
    """The original lost its pretrained heads (renamed keys, strict=False); here all weights arrive."""
    company = embedding_classifier(num_classes=4, embed_dim=8, **SMALL).get_layer("embedding")
    kind = embedding_model(embed_dim=8, name="embedding", **SMALL)
    model = dual_embedding_regression(company_model=company, model_model=kind, **SMALL)
    for source, name in ((company, "embedding_company"), (kind, "embedding_model")):
        arrived = model.get_layer(name)
        assert [w.path for w in arrived.weights] == [w.path for w in source.weights]
        for theirs, ours in zip(source.weights, arrived.weights, strict=True):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs))
    assert len(qualified_weights(model)) == len(model.weights)


def test_a_pretrained_embedding_model_of_another_size_is_refused():
    company = embedding_model(embed_dim=8, **SMALL)
    with pytest.raises(ValueError, match="16-wide ViT features, but model_size='small' has 384"):
        dual_embedding_regression(image_size=IMAGE_SIZE, model_size="small", company_model=company)


def test_the_block_by_block_vit_computes_keras_hubs_vit_backbone(tmp_path):
    """Copying a keras-hub ViT (saved as a local preset) gives its class token to float32 precision."""
    from modeling.backbones import hub_backbone

    hub = hub_backbone("vit", "tiny", image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), **TINY_VIT)
    hub.save_to_preset(tmp_path / "preset")
    ours = embedding_model(embed_dim=8, weights=str(tmp_path / "preset"), **{**SMALL, "vit_overrides": None})
    expected = keras.ops.convert_to_numpy(hub(IMAGES))[:, 0]
    got = ours.predict(IMAGES, verbose=0)["features"]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_a_head_with_target_statistics_returns_std_times_its_prediction_plus_mean_after_a_round_trip(tmp_path):
    model = baseline_regression(target_statistics=([11.0, 4.0], [2.0, 0.5]), **SMALL)
    standardised = keras.Model(model.input, model.get_layer("standardised_dimensions").output).predict(IMAGES)
    np.testing.assert_allclose(model.predict(IMAGES)[DIMENSIONS], standardised * [2.0, 0.5] + [11.0, 4.0], 1e-5)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict(IMAGES)[DIMENSIONS], model.predict(IMAGES)[DIMENSIONS], 1e-5)
