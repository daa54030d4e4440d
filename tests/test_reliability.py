"""Reliability rules of the runtime-spec and runc's behaviour under failure."""

import os
import signal
import subprocess
import time
from helpers import wait_for




def test_create_killed_midway_never_runs_the_process(conch, make_bundle, cid, tmp_path):
    """SIGKILL conch while a prestart hook runs: the init sees EOF on its sync
    socket and exits without running the user's process; delete --force removes
    the state dir and the cgroup."""
    out = tmp_path / "out"
    out.mkdir()
    started = tmp_path / "hook-started"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {started}\nsleep 30\n")
    hook.chmod(0o755)
    b = make_bundle(["sh", "-c", "touch /out/ran"])
    b.config["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                               "options": ["rbind", "rw"]})
    b.config["hooks"] = {"prestart": [{"path": str(hook)}]}
    b.save()
    c = cid()
    p = conch.popen("create", "-b", b.path, c, stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_for(started.exists), "the prestart hook did not start"
        os.killpg(p.pid, signal.SIGKILL)  # conch and its hook
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    # the init is gone without having run anything
    def no_init():
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if c.encode() in f.read():
                            return False
                except OSError:
                    pass
        return True
    assert wait_for(no_init), "the container's init is still there"
    assert not (out / "ran").exists()
    assert os.path.isdir(os.path.join(conch.root, c))  # what the killed create left...
    r = conch("delete", "--force", c)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(conch.root, c))  # ...delete --force removes
    # (the conch fixture then checks that no cgroup, mount or process is left)


def test_state_is_stopped_when_the_init_dies_outside_conch(conch, make_bundle, cid):
    b = make_bundle(["sleep", "600"])
    c = cid()
    conch("run", "-d", "-b", b.path, c, check=True)
    pid = conch.state(c)["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: conch.state(c)["status"] == "stopped")
    assert conch.state(c)["pid"] == 0
    r = conch("kill", c, "TERM")
    assert r.returncode == 1 and "container not running" in r.stderr
    conch("delete", c, check=True)


def test_failed_start_of_a_dead_init_leaves_state_consistent(conch, make_bundle, cid):
    """A created container whose init was killed: start fails as runc's does and
    delete cleans up."""
    b = make_bundle(["true"])
    c = cid()
    conch("create", "-b", b.path, c, check=True)
    os.kill(conch.state(c)["pid"], signal.SIGKILL)
    assert wait_for(lambda: conch.state(c)["status"] == "stopped")
    r = conch("start", c)
    assert r.returncode == 1
    assert "cannot start a container that has stopped" in r.stderr
    conch("delete", c, check=True)
    assert conch("list", "-q").stdout == ""
