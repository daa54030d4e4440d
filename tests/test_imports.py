"""The start path's import set must not grow: each of these costs milliseconds.

Measured with hyperfine on this VM (python3 -I -S, medians): `import ctypes`
+5.6 ms, `json` +5 ms (json.decoder compiles regular expressions), `socket`
+4.9 ms and `signal` +2.4 ms (both import enum), `re` +4.4 ms, argparse,
typing, subprocess, dataclasses more. conch uses their C modules (_ctypes,
_json, _socket, _signal) instead. `-X importtime` lists every module a real
`conch` process imports, the forked init included.
"""

import subprocess
import tempfile

import pytest

DENY = {"re", "json", "enum", "typing", "argparse", "subprocess", "signal", "socket",
        "ctypes", "dataclasses", "selectors", "tempfile", "shutil", "pwd", "grp",
        "locale", "logging", "threading", "datetime", "pathlib", "importlib.metadata",
        "site", "functools", "collections", "weakref", "inspect", "traceback", "pickle",
        "os", "_collections_abc", "posixpath",  # conch._os: os minus its 5M-instruction import
        "fcntl", "resource",  # dlopens (0.2-0.3M instructions): conch.syscalls has the calls
        "stat"}  # stat.py over _stat: conch uses _stat


def imported(conch, *args):
    # a file, not a pipe: a created container's init keeps its stdio open
    with tempfile.TemporaryFile("w+") as err:
        r = subprocess.run(["/usr/bin/python3", "-IS", "-X", "importtime", conch.argv0[0],
                            "--root", conch.root, *args], stdout=subprocess.DEVNULL,
                           stderr=err, text=True, timeout=30, stdin=subprocess.DEVNULL)
        err.seek(0)
        r.stderr = err.read()
    mods = set()
    for line in r.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            mods.add(line.rsplit("|", 1)[1].strip())
    return r, mods


@pytest.mark.parametrize("cmd", ["run", "create"])
def test_start_path_imports_no_costly_module(conch, make_bundle, cid, cmd):
    b = make_bundle(["true"])
    c = cid()
    conch.ids.add(c)
    r, mods = imported(conch, cmd, "-b", b.path, c)
    assert r.returncode == 0, r.stderr[-500:]
    assert "conch.init" in mods  # the listing works: the init is on this path
    assert not mods & DENY, f"{cmd} imports {sorted(mods & DENY)}"


def test_lifecycle_commands_import_no_costly_module(conch, make_bundle, cid):
    b = make_bundle(["sleep", "30"])
    c = cid()
    conch("create", "-b", b.path, c, check=True)
    # and none of create's machinery: the config model, the FFI and its dlopen of
    # _ctypes, seccomp (start 12.5 -> 7 ms on the test VM once it stopped loading them)
    create_only = {"conch.config", "conch.syscalls", "_ctypes", "conch.seccomp",
                   "conch.container", "conch.init", "conch.rootfs"}
    for args in (["start", c], ["state", c], ["list"], ["kill", c, "KILL"],
                 ["delete", "--force", c]):
        r, mods = imported(conch, *args)
        assert r.returncode == 0, (args, r.stderr[-500:])
        assert "conch.state" in mods  # the listing works
        assert not mods & DENY, f"{args[0]} imports {sorted(mods & DENY)}"
        assert not mods & create_only, f"{args[0]} imports {sorted(mods & create_only)}"
