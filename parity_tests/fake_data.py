"""Stand-ins for the MNIST download that several data tests share: tarballs written here, a fake
``npm`` that serves them (no network), and IDX files written byte by byte."""

from __future__ import annotations

import io
import struct
import sys
import tarfile
from pathlib import Path

import numpy as np

FAKE_NPM = """#!{python}
import pathlib, shutil, sys
log = pathlib.Path({log!r})
with log.open("a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
plan = {plan!r}
tarball = plan[min(len(log.read_text().splitlines()), len(plan)) - 1]
if tarball is None:
    sys.stderr.write("npm ERR! code E404\\nnpm ERR! 404 Not Found - GET https://registry\\n")
    sys.exit(1)
shutil.copy(tarball, "pkg-1.0.0.tgz")
"""


def make_tarball(path: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    """A .tgz with regular files and symbolic links at the given member paths."""
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return path


def install_fake_npm(bin_dir: Path, plan: list[Path | None]) -> tuple[Path, Path]:
    """Write an executable ``npm`` into ``bin_dir`` whose k-th call copies ``plan[k]`` (the last
    entry for later calls) into its cwd, or fails like a 404 for ``None``; returns (npm, call
    log)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    npm, log = bin_dir / "npm", bin_dir / "npm-calls.log"
    npm.write_text(FAKE_NPM.format(python=sys.executable, log=str(log),
                                   plan=[str(p) if p else None for p in plan]))
    npm.chmod(0o755)
    return npm, log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


# IDX type code -> big-endian element type, written out independently of the reader's table.
TYPE_CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """The IDX file of ``array``: 00 00 code ndim, big-endian uint32 sizes, big-endian data."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(TYPE_CODES[code]).tobytes()
