"""Output paths checked before any work (``reports.files.outputs``): suffix, an existing file or
directory in the way, a parent that is a file, a place this process cannot write in."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.errors import BadInput
from reports.files.outputs import JSON_SUFFIXES, PLOT_SUFFIXES, check_dir, check_file

from helpers import read_only_dir


@pytest.fixture
def read_only(tmp_path) -> Path:
    return read_only_dir(tmp_path)


def test_check_file_accepts_a_new_file_in_a_directory_to_be_created(tmp_path):
    path = tmp_path / "a" / "b" / "heat.SVG"
    assert check_file(path, "--plot", PLOT_SUFFIXES) == path
    assert not (tmp_path / "a").exists()  # checking creates nothing


@pytest.mark.parametrize("name, message", [
    ("out.txt", "argument --json: expected a file name ending in .json, received '{tmp}/out.txt'"),
    ("out", "argument --json: expected a file name ending in .json, received '{tmp}/out'"),
    ("folder.json", "argument --json: expected a file, received {tmp}/folder.json, an existing "
                    "directory"),
    ("plain.txt/x.json", "argument --json: expected a directory that exists or can be created, "
                         "received {tmp}/plain.txt, below the file {tmp}/plain.txt"),
])
def test_check_file_rejections_name_option_and_path(name, message, tmp_path):
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(BadInput) as caught:
        check_file(tmp_path / name, "--json", JSON_SUFFIXES)
    assert str(caught.value).startswith(message.format(tmp=tmp_path)), str(caught.value)


def test_check_dir_rejects_a_file_and_a_read_only_place(tmp_path, read_only):
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(BadInput, match="argument --out: expected a directory, received "
                                       ".*plain.txt, an existing file"):
        check_dir(tmp_path / "plain.txt", "--out")
    with pytest.raises(BadInput, match=f"argument --out: expected a writable directory, received "
                                       f"{read_only}/run: cannot write in {read_only} "):
        check_dir(read_only / "run", "--out")
    assert check_dir(tmp_path / "new" / "run", "--out") == tmp_path / "new" / "run"
