"""Fixtures of the bone-age command tests."""

import pytest

from training.boneage import phantom


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantom")
    phantom.make_dataset(root, n_train=24, n_val=8, n_test=8, img_size=64, seed=5)
    return root
