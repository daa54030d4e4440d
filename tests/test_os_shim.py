"""conch._os (os without importing os) behaves as os/posixpath for what conch uses."""

import os
import posixpath

import pytest

from conch import _os

PATHS = ["", ".", "/", "//", "///", "a", "a/", "/a", "a/b", "/a/b/", "a//b", "/a/./b",
         "/a/../b", "a/../../b", "../a", "/../a", "//a/b", "a/b/..", "/a/b/../..", "./a/./",
         "a/b/../../..", "/x/y/../../z/", "..", "../.."]


@pytest.mark.parametrize("p", PATHS)
def test_path_functions_match_posixpath(p):
    assert _os.path.normpath(p) == posixpath.normpath(p)
    assert _os.path.dirname(p) == posixpath.dirname(p)
    assert _os.path.basename(p) == posixpath.basename(p)
    assert _os.path.isabs(p) == posixpath.isabs(p)
    assert _os.path.abspath(p) == posixpath.abspath(p)


@pytest.mark.parametrize("a,rest", [("a", ("b",)), ("/a/", ("b", "c")), ("a", ("/b", "c")),
                                    ("", ("b",)), ("a", ("",)), ("/", ("x",))])
def test_join_matches_posixpath(a, rest):
    assert _os.path.join(a, *rest) == posixpath.join(a, *rest)


def test_file_predicates_and_makedirs(tmp_path):
    d = tmp_path / "x" / "y" / "z"
    _os.makedirs(str(d), 0o755)
    assert _os.path.isdir(str(d)) and _os.path.exists(str(d))
    _os.makedirs(str(d), exist_ok=True)
    with pytest.raises(FileExistsError):
        _os.makedirs(str(d))
    (tmp_path / "l").symlink_to("nowhere")
    assert _os.path.lexists(str(tmp_path / "l")) and not _os.path.exists(str(tmp_path / "l"))


def test_environ_and_fs_names():
    assert _os.environ.get("PATH") == os.environ.get("PATH")
    assert _os.fsencode("é") == os.fsencode("é")
    assert _os.fsdecode(b"\xff") == os.fsdecode(b"\xff")
    assert _os.O_CLOEXEC == os.O_CLOEXEC and _os._exit is os._exit
