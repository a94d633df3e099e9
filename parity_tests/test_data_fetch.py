"""The verified npm fetch, driven by a fake ``npm`` that serves tarballs written here (no
network)."""

from __future__ import annotations

import hashlib

import pytest

from scratch.data import npm_fetch
from scratch.data.npm_fetch import FetchError, fetch_npm_files

from fake_data import calls, install_fake_npm, make_tarball

# b is incompressible, so a tarball cut in half is cut inside b's data.
GOOD = {"a": b"first file\n",
        "b": b"".join(hashlib.sha256(bytes([i])).digest() for i in range(200))}
SHA = {name: hashlib.sha256(data).hexdigest() for name, data in GOOD.items()}

@pytest.fixture
def tarballs(tmp_path):
    """good: the expected files; bad: file a altered; truncated: a cut-off good tarball."""
    good = make_tarball(tmp_path / "good.tgz", {f"package/{n}": d for n, d in GOOD.items()})
    bad = make_tarball(tmp_path / "bad.tgz",
                       {"package/a": b"first fil3\n", "package/b": GOOD["b"]})
    truncated = tmp_path / "truncated.tgz"
    truncated.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    return {"good": good, "bad": bad, "truncated": truncated}


def test_fetch_stores_verified_files(tmp_path, tarballs):
    npm, log = install_fake_npm(tmp_path / "bin", [tarballs["good"]])
    dest = tmp_path / "cache" / "nested"
    paths = fetch_npm_files("pkg@1.0.0", SHA, dest, npm=str(npm))
    assert paths == [dest / "a", dest / "b"]
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == GOOD
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in paths)
    assert calls(log) == ["pack pkg@1.0.0"]


def test_fetch_checksum_mismatch_is_reported_and_refetched_once(tmp_path, tarballs):
    npm, log = install_fake_npm(tmp_path / "bin", [tarballs["bad"], tarballs["good"]])
    bad_sha = hashlib.sha256(b"first fil3\n").hexdigest()
    with pytest.warns(RuntimeWarning, match=f"a has SHA-256 {bad_sha}, expected {SHA['a']}. "
                                            "Fetching it again"):
        fetch_npm_files("pkg@1.0.0", SHA, tmp_path / "dest", npm=str(npm))
    assert {p.name: p.read_bytes() for p in (tmp_path / "dest").iterdir()} == GOOD
    assert len(calls(log)) == 2


def test_fetch_checksum_mismatch_twice_stores_nothing(tmp_path, tarballs):
    npm, log = install_fake_npm(tmp_path / "bin", [tarballs["bad"]])
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a").write_bytes(GOOD["a"])  # a good file from an earlier fetch must survive
    with pytest.warns(RuntimeWarning), pytest.raises(FetchError, match="on two downloads in a row"):
        fetch_npm_files("pkg@1.0.0", SHA, dest, npm=str(npm))
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == {"a": GOOD["a"]}
    assert len(calls(log)) == 2


def test_fetch_corrupt_tarball_is_refetched(tmp_path, tarballs):
    npm, log = install_fake_npm(tmp_path / "bin", [tarballs["truncated"], tarballs["good"]])
    with pytest.warns(RuntimeWarning, match="pkg-1.0.0.tgz could not be read"):
        fetch_npm_files("pkg@1.0.0", SHA, tmp_path / "dest", npm=str(npm))
    assert {p.name: p.read_bytes() for p in (tmp_path / "dest").iterdir()} == GOOD
    assert len(calls(log)) == 2


def test_fetch_npm_missing_is_reported(tmp_path, monkeypatch):
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(FetchError, match="npm was not found on PATH"):
        fetch_npm_files("pkg@1.0.0", SHA, tmp_path / "dest")


def test_fetch_npm_failure_reports_exit_code_and_stderr(tmp_path):
    npm, log = install_fake_npm(tmp_path / "bin", [None])
    with pytest.raises(FetchError,
                       match=r"(?s)npm pack pkg@1.0.0` failed \(exit code 1.*404 Not Found"):
        fetch_npm_files("pkg@1.0.0", SHA, tmp_path / "dest", npm=str(npm))
    assert len(calls(log)) == 1  # a registry error is not a corrupt download: no second try
    assert list((tmp_path / "dest").iterdir()) == []


def test_fetch_reads_only_the_expected_regular_files(tmp_path):
    evil = make_tarball(tmp_path / "evil.tgz",
                        {"package/b": GOOD["b"], "package/../../escaped": b"x", "package/c": b"x"},
                        links={"package/a": "/etc/hostname"})
    npm, _ = install_fake_npm(tmp_path / "bin", [evil])
    dest = tmp_path / "deep" / "dest"
    with pytest.warns(RuntimeWarning), pytest.raises(FetchError,
                                                     match="the tarball has no file package/a"):
        fetch_npm_files("pkg@1.0.0", SHA, dest, npm=str(npm))
    assert list(dest.iterdir()) == []
    assert not list(tmp_path.rglob("escaped"))


def test_fetch_interrupted_leaves_no_file(tmp_path, tarballs, monkeypatch):
    npm, _ = install_fake_npm(tmp_path / "bin", [tarballs["good"]])
    copy = npm_fetch._copy_to_temp
    copies = []

    def interrupted_on_second_file(source, dest, name):
        copies.append(name)
        if len(copies) == 2:
            raise KeyboardInterrupt
        return copy(source, dest, name)

    monkeypatch.setattr(npm_fetch, "_copy_to_temp", interrupted_on_second_file)
    with pytest.raises(KeyboardInterrupt):
        fetch_npm_files("pkg@1.0.0", SHA, tmp_path / "dest", npm=str(npm))
    assert copies == ["a", "b"]
    assert list((tmp_path / "dest").iterdir()) == []
