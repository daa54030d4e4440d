"""The installed launcher: conch's modules from the bundle, else from the package."""

import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = subprocess.run(["/usr/bin/python3", "-c", "import sys; print(sys.implementation.cache_tag)"],
                     capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def installed(tmp_path):
    prefix = tmp_path / "prefix"
    subprocess.run(["sh", os.path.join(REPO, "tools", "install.sh"), str(prefix)], check=True,
                   stdout=subprocess.DEVNULL)
    return prefix


def conch(prefix, *args, root):
    return subprocess.run([str(prefix / "bin" / "conch"), "--root", str(root), *args],
                          capture_output=True, text=True, timeout=30)


def test_the_bundle_is_what_runs(installed, tmp_path):
    lib = installed / "lib" / "conch"
    assert (lib / f"conch.{TAG}.bundle").is_file()
    # without the package's sources and byte code, the bundle alone runs every command
    shutil.rmtree(lib / "conch")
    r = conch(installed, "--version", root=tmp_path / "root")
    assert r.returncode == 0 and r.stdout.startswith("conch version "), r.stderr
    r = conch(installed, "state", "nosuch", root=tmp_path / "root")
    assert r.returncode == 1 and "container does not exist" in r.stderr, r.stderr
    r = conch(installed, "list", root=tmp_path / "root")
    assert (r.returncode, r.stdout.split()) == (0, ["ID", "PID", "STATUS", "BUNDLE", "CREATED",
                                                    "OWNER"])


@pytest.mark.parametrize("how", ["missing", "another interpreter's"])
def test_without_a_bundle_for_this_python_the_package_runs(installed, tmp_path, how):
    bundle = installed / "lib" / "conch" / f"conch.{TAG}.bundle"
    if how == "missing":
        bundle.unlink()
    else:
        bundle.rename(bundle.with_name("conch.cpython-399.bundle"))
    r = conch(installed, "--version", root=tmp_path / "root")
    assert r.returncode == 0 and r.stdout.startswith("conch version "), r.stderr
    r = conch(installed, "state", "nosuch", root=tmp_path / "root")
    assert r.returncode == 1 and "container does not exist" in r.stderr, r.stderr


def test_a_bundled_run_behaves_as_the_package(installed, tmp_path, make_bundle, cid):
    """A container runs through the bundle as through the package."""
    b = make_bundle(["sh", "-c", "echo hello from $(hostname)"])
    b.config["hostname"] = "bundled"
    b.save()
    root = tmp_path / "root"
    r = conch(installed, "run", "-b", b.path, cid(), root=root)
    assert (r.returncode, r.stdout) == (0, "hello from bundled\n"), r.stderr
    # -X importtime lists the bundle's modules as it lists importlib's
    r = subprocess.run(["/usr/bin/python3", "-IS", "-X", "importtime",
                        str(installed / "bin" / "conch"), "--root", str(root), "state", "x"],
                       capture_output=True, text=True, timeout=30)
    lines = [x for x in r.stderr.splitlines() if x.startswith("import time:")]
    assert any(x.endswith("| conch.state") for x in lines), r.stderr


def test_another_file_at_the_bundles_path_is_not_loaded(installed, tmp_path):
    """A process that entered a container would find the container's file at the
    bundle's path: conch loads modules only from the file it started from."""
    bundle = installed / "lib" / "conch" / f"conch.{TAG}.bundle"
    other = tmp_path / "other.bundle"
    shutil.copy(bundle, other)  # the same bytes, another file
    script = f"""
import posix, sys
from marshal import loads
bundle = {str(bundle)!r}
with open(bundle, "rb") as f:
    boot, index = loads(f.read(int(f.readline())))
exec(boot, {{"__name__": "__conch_boot__", "bundle": bundle, "index": index, "BOOT_ONLY": True}})
import conch.errors
print("loaded", conch.errors.__file__)
posix.rename({str(other)!r}, bundle)
try:
    import conch.jsonlite
except ImportError as e:
    print("refused:", e)
"""
    r = subprocess.run(["/usr/bin/python3", "-IS", "-c", script], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == f"loaded {installed}/lib/conch/conch/errors.py"
    assert out[1].startswith("refused: conch.jsonlite: ") and "not the file conch started" \
        in out[1], out
