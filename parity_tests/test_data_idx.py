"""The IDX reader on small files written here byte by byte (no network, no MNIST)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratch.data.idx import parse_idx, read_idx

from fake_data import TYPE_CODES, idx_bytes


def labels_file(values=(5, 0, 4)) -> bytes:
    return idx_bytes(np.array(values, np.uint8), 0x08)


@settings(max_examples=30, deadline=None)
@given(data=st.data(), code=st.sampled_from(sorted(TYPE_CODES)))
def test_idx_parse_round_trips_every_type(data, code):
    array = data.draw(hnp.arrays(np.dtype(TYPE_CODES[code]).newbyteorder("="),
                                 hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)))
    parsed = parse_idx(idx_bytes(array, code))
    assert parsed.shape == array.shape
    assert parsed.dtype == np.dtype(TYPE_CODES[code]).newbyteorder("=")
    np.testing.assert_array_equal(parsed, array)


@pytest.mark.parametrize("compress, filename", [
    (False, "images-idx3-ubyte"), (True, "images-idx3-ubyte.gz"), (True, "gzipped-without-suffix"),
])
def test_idx_read_raw_and_gzip_files(tmp_path, compress, filename):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(images, 0x08)
    (tmp_path / filename).write_bytes(gzip.compress(data) if compress else data)
    np.testing.assert_array_equal(read_idx(tmp_path / filename, (None, 3, 4), "uint8"), images)


def test_idx_reads_big_endian_int32_values():
    # 0x01020304 = 16909060 stored big-endian must not come back byte-swapped (67305985).
    data = bytes([0, 0, 0x0C, 1, 0, 0, 0, 1, 1, 2, 3, 4])
    assert parse_idx(data).tolist() == [16909060]


@pytest.mark.parametrize("header, received", [
    (bytes([1, 0, 0x08, 1]), "0x01000801"),    # first bytes must be zero
    (bytes([0, 0, 0x07, 1]), "0x00000701"),    # no such type code
    (bytes([0, 0, 0x08, 0]), "0x00000800"),    # zero dimensions
])
def test_idx_wrong_magic_is_rejected(header, received):
    with pytest.raises(ValueError,
                       match=f"f.idx: expected an IDX magic number .*received {received}"):
        parse_idx(header + struct.pack(">I", 3) + b"\x05\x00\x04", "f.idx")


def test_idx_file_shorter_than_magic_is_rejected():
    with pytest.raises(ValueError,
                       match="expected an IDX magic number of 4 bytes, received a file of 3"):
        parse_idx(b"\0\0\x08", "f.idx")


def test_idx_truncated_header_is_rejected():
    with pytest.raises(ValueError, match=r"expected 3 dimension sizes \(16 header bytes\), "
                                         r"received a file of 12"):
        parse_idx(bytes([0, 0, 0x08, 3]) + struct.pack(">2I", 2, 2), "f.idx")


@pytest.mark.parametrize("cut, received, kind", [(1, 2, "truncated"), (-1, 4, "trailing bytes")])
def test_idx_payload_size_mismatch_is_rejected(cut, received, kind):
    data = labels_file()
    data = data[:-cut] if cut > 0 else data + b"\0"
    with pytest.raises(ValueError, match=rf"f.idx: expected a payload of 3 bytes for dimensions "
                                         rf"\(3,\) of uint8, received {received} bytes \({kind}\)"):
        parse_idx(data, "f.idx")


def test_idx_truncated_gzip_stream_names_the_file(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(labels_file())[:-6])
    with pytest.raises(ValueError, match=f"{path}: expected a complete gzip stream"):
        read_idx(path)


def test_idx_wrong_count_is_rejected():
    with pytest.raises(ValueError, match=r"f.idx: expected dimensions \(4,\), received \(3,\)"):
        parse_idx(labels_file(), "f.idx", shape=(4,))


def test_idx_wrong_rank_is_rejected():
    with pytest.raises(ValueError, match=r"expected dimensions \(N, 28, 28\), received \(3,\)"):
        parse_idx(labels_file(), "f.idx", shape=(None, 28, 28))


def test_idx_wrong_element_type_is_rejected():
    with pytest.raises(ValueError,
                       match=r"expected elements of type uint8, received type code 0x0c \(int32\)"):
        parse_idx(idx_bytes(np.array([1, 2]), 0x0C), "f.idx", dtype="uint8")
