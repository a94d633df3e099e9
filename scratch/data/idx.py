"""Reader of the IDX format of the MNIST files (raw or gzip-compressed).

An IDX file is a 4-byte magic number ``00 00 TT NN`` (TT the element type, NN the number of
dimensions), NN big-endian uint32 dimension sizes, then the elements in C order, big-endian.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

# Element type codes of the IDX format.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"


def parse_idx(data: bytes, name: str = "<bytes>", shape: tuple | None = None,
              dtype: str | None = None) -> np.ndarray:
    """Decode the bytes of an (uncompressed) IDX file.

    Args:
        data: the whole file.
        name: what to call the file in error messages.
        shape: expected dimensions, ``None`` entries match any size; not checked if ``None``.
        dtype: expected element type (e.g. ``"uint8"``); not checked if ``None``.

    Returns:
        A read-only array of the dimensions in the header, native byte order.

    Raises:
        ValueError: naming the file, the field (magic number, dimensions, payload size), what
            was expected and what was received.
    """
    if len(data) < 4:
        raise ValueError(f"{name}: expected an IDX magic number of 4 bytes, received a file of "
                         f"{len(data)} bytes.")
    code, ndim = data[2], data[3]
    if data[:2] != b"\0\0" or code not in IDX_TYPES or ndim == 0:
        codes = ", ".join(f"{c:02x}" for c in IDX_TYPES)
        raise ValueError(f"{name}: expected an IDX magic number 0000TTNN with type TT in "
                         f"{{{codes}}} and NN >= 1 dimensions, received 0x{data[:4].hex()}.")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: expected {ndim} dimension sizes ({header} header bytes), "
                         f"received a file of {len(data)} bytes.")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    element = np.dtype(IDX_TYPES[code])
    if dtype is not None and element.name != np.dtype(dtype).name:
        raise ValueError(f"{name}: expected elements of type {np.dtype(dtype).name}, received "
                         f"type code 0x{code:02x} ({element.name}).")
    if shape is not None and (len(shape) != ndim
                              or any(e is not None and e != d for e, d in zip(shape, dims))):
        raise ValueError(f"{name}: expected dimensions {_shape_text(shape)}, received {dims}.")
    expected, received = math.prod(dims) * element.itemsize, len(data) - header
    if received != expected:
        kind = "truncated" if received < expected else "trailing bytes"
        raise ValueError(f"{name}: expected a payload of {expected} bytes for dimensions {dims} of "
                         f"{element.name}, received {received} bytes ({kind}).")
    array = np.frombuffer(data, element, count=math.prod(dims), offset=header).reshape(dims)
    return array if element.isnative else array.astype(element.newbyteorder("="))


def read_idx_bytes(path: str | Path) -> bytes:
    """The bytes of an IDX file, gunzipped first if it is gzip-compressed (whatever its name).

    Raises ValueError for a damaged gzip stream, naming the file.
    """
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{path}: expected a complete gzip stream, received a damaged one "
                             f"({error}).") from None
    return data


def read_idx(path: str | Path, shape: tuple | None = None, dtype: str | None = None) -> np.ndarray:
    """Read an IDX file, gunzipping it first if it is gzip-compressed (whatever its name).

    ``shape`` and ``dtype`` are checked as in ``parse_idx``; raises ValueError for a malformed
    file or a damaged gzip stream, naming the file.
    """
    return parse_idx(read_idx_bytes(path), str(Path(path)), shape, dtype)


def _shape_text(shape: tuple) -> str:
    """(None, 28, 28) -> "(N, 28, 28)"; (60000,) -> "(60000,)"."""
    inner = ", ".join("N" if s is None else str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"
