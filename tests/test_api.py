"""The Python API as the README shows it: conch.container's lifecycle functions."""

import os
import subprocess
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def api(code, **names):
    """Run `code` in a fresh /usr/bin/python3 with the checkout importable (create forks
    the container's init from the calling process: not from pytest's)."""
    prelude = "".join(f"{k} = {v!r}\n" for k, v in names.items())
    # files, not pipes: a created container's init holds the caller's stdio until it runs
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        r = subprocess.run(["/usr/bin/python3", "-c", prelude + code], stdout=out, stderr=err,
                           text=True, timeout=30, cwd=REPO, stdin=subprocess.DEVNULL)
        out.seek(0)
        err.seek(0)
        r.stdout, r.stderr = out.read(), err.read()
    return r


def test_create_start_kill_delete_from_python(conch, make_bundle, cid):
    b = make_bundle(["sh", "-c", "echo started > /dev/shm/mark; exec sleep 100"])
    c = cid()
    conch.ids.add(c)
    r = api("from conch import container\n"
            "container.create(root, cid, bundle)\n", root=conch.root, cid=c, bundle=b.path)
    assert r.returncode == 0, r.stderr
    assert conch.state(c)["status"] == "created"
    r = api("from conch import container\ncontainer.start(root, cid)\n", root=conch.root, cid=c)
    assert r.returncode == 0, r.stderr
    st = conch.state(c)
    assert st["status"] == "running" and st["bundle"] == b.path
    assert conch("exec", c, "cat", "/dev/shm/mark").stdout == "started\n"
    r = api("from conch import container\ncontainer.kill(root, cid, 9)\n"
            "import time\n"
            "from conch.state import State\n"
            "while State.load(root, cid).status() != 'stopped': time.sleep(0.01)\n"
            "container.delete(root, cid)\n", root=conch.root, cid=c)
    assert r.returncode == 0, r.stderr
    assert conch("list", "-q").stdout == ""


def test_errors_are_exceptions_naming_the_field(conch, make_bundle, cid):
    b = make_bundle(["true"])
    b.process["user"]["uid"] = "x"
    b.save()
    r = api("from conch import container\n"
            "from conch.errors import ConfigError\n"
            "try:\n"
            "    container.create(root, cid, bundle)\n"
            "except ConfigError as e:\n"
            "    print(e.field, '|', e)\n", root=conch.root, cid=cid(), bundle=b.path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == 'process.user.uid | process.user.uid: expected integer, got "x"\n'
    assert conch("list", "-q").stdout == ""
