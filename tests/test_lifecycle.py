"""The lifecycle as a runc user drives it: create, start, state, list, kill, delete, run.

Every check is on what a user sees: stdout, stderr, exit codes and the `state`
JSON. A detached container writes to the stdio of the `create` or `run -d` that
made it: the `bg` fixture puts that on files, which the tests then read.
"""

import array
import calendar
import itertools
import json
import marshal
import os
import re
import signal
import socket
import subprocess
import time

import pytest
from helpers import read_until, wait_for

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
STATE_KEYS = {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"}
TRAP_TERM = ('trap "echo got-TERM; exit 7" TERM; echo ready; '
             'sleep 1000 & wait')




def status_of(conch, cid):
    return conch.state(cid)["status"]


def wait_status(conch, cid, status, timeout=10.0):
    """Poll `state` until the container has status; return that state."""
    def check():
        st = conch.state(cid)
        return st if st["status"] == status else None
    return wait_for(check, timeout, f"{cid} to be {status}")


def alive(pid):
    """The pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(")") + 2] not in "ZX"


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")[:-1]


def no_pid_ns(bundle):
    bundle.linux["namespaces"] = [ns for ns in bundle.linux["namespaces"]
                                  if ns["type"] != "pid"]
    return bundle.save()


_DUP_EXEC = ("import os, sys\n"
             "n = int(sys.argv[1])\n"
             "for i in range(n):\n"
             "    os.dup2(int(sys.argv[3 + 2 * i]), int(sys.argv[2 + 2 * i]))\n"
             "os.execv(sys.argv[2 + 2 * n], sys.argv[2 + 2 * n:])\n")


def with_fds(fds, argv):
    """A command line that runs argv with fds {target: source} dup2()ed into place
    (so not close-on-exec, like the stray fds engines leave)."""
    pairs = [str(x) for t, s in fds.items() for x in (t, s)]
    return ["/usr/bin/python3", "-c", _DUP_EXEC, str(len(fds))] + pairs + list(argv)


@pytest.fixture
def bg(conch, tmp_path):
    """bg(*args, cwd=None) runs conch with its stdio on files (the container may
    keep them); returns a CompletedProcess with .out, the stdout file, which the
    container goes on writing to."""
    n = itertools.count()

    def run(*args, cwd=None, timeout=30, pass_fds=()):
        i = next(n)
        out, err = tmp_path / f"bg{i}.out", tmp_path / f"bg{i}.err"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            p = conch.popen(*args, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, cwd=cwd,
                            pass_fds=pass_fds)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise
        r = subprocess.CompletedProcess(p.args, rc, out.read_text(), err.read_text())
        r.out = out
        return r

    return run


def started(conch, bg, bundle, cid, *extra):
    """`run -d` a container and return its state (running)."""
    r = bg("run", "-d", "-b", bundle.path, *extra, cid)
    assert r.returncode == 0, r.stderr
    st = conch.state(cid)
    assert st["status"] == "running"
    return st


def message(stderr):
    """The error message of a logrus text line (what stderr shows without --log)."""
    m = re.search(r'level=error msg="((?:[^"\\]|\\.)*)"', stderr)
    if not m:
        return stderr
    return re.sub(r"\\(.)", lambda x: {"n": "\n"}.get(x.group(1), x.group(1)), m.group(1))


def fails(r, text, rc=1):
    assert r.returncode == rc, f"rc {r.returncode}, stderr: {r.stderr}"
    assert text in message(r.stderr), r.stderr


# --- create, start, state ------------------------------------------------------------

def test_create_start_kill_delete_walks_through_the_states(conch, bg, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    b.config["annotations"] = {"org.example.key": "value", "other": "x y"}
    b.save()
    c = cid()
    before = time.time()
    r = bg("create", "-b", b.path, c)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""

    st = conch.state(c)
    assert set(st) == STATE_KEYS | {"annotations"}
    assert st["id"] == c
    assert st["status"] == "created"
    assert st["ociVersion"] == b.config["ociVersion"]
    assert st["pid"] > 0 and alive(st["pid"])
    assert st["bundle"] == b.path and os.path.isabs(st["bundle"])
    assert st["rootfs"] == b.config["root"]["path"] and os.path.isabs(st["rootfs"])
    assert st["owner"] == ""
    assert st["annotations"] == {"org.example.key": "value", "other": "x y"}
    assert RFC3339.match(st["created"]), st["created"]
    created = calendar.timegm(time.strptime(st["created"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert before - 2 <= created <= time.time() + 1
    # created: the user's process has not been executed yet
    assert cmdline(st["pid"]) != [b"sleep", b"1000"]

    r = conch("start", c)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    st2 = conch.state(c)
    assert st2["status"] == "running"
    assert st2["pid"] == st["pid"]
    assert cmdline(st["pid"]) == [b"sleep", b"1000"]

    r = conch("kill", c, "KILL")
    assert r.returncode == 0, r.stderr
    st3 = wait_status(conch, c, "stopped")
    assert st3["pid"] == 0
    for k in ("id", "bundle", "rootfs", "created", "annotations", "owner"):
        assert st3[k] == st[k]

    r = conch("delete", c)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    fails(conch("state", c), "container does not exist")
    assert conch("list", "-q").stdout == ""


@pytest.mark.parametrize("annotations", [None, {}])
def test_state_omits_empty_annotations(conch, bg, make_bundle, cid, annotations):
    b = make_bundle(["sleep", "1000"])
    if annotations is not None:
        b.config["annotations"] = annotations
        b.save()
    c = cid()
    assert bg("create", "-b", b.path, c).returncode == 0
    st = conch.state(c)
    assert set(st) == STATE_KEYS
    # what `state` prints is JSON a client can decode as is
    assert json.loads(conch("state", c).stdout) == st


def test_relative_bundle_is_recorded_absolute(conch, bg, make_bundle, cid, tmp_path):
    b = make_bundle(["sleep", "1000"], name="relbundle")
    c = cid()
    r = bg("create", "--bundle", "relbundle", c, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert conch.state(c)["bundle"] == b.path


def test_list_table_quiet_and_json(conch, bg, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    b.config["annotations"] = {"k": "v"}
    b.save()
    c1, c2 = cid(), cid()
    assert bg("create", "-b", b.path, c1).returncode == 0
    assert bg("run", "-d", "-b", b.path, c2).returncode == 0
    s1, s2 = conch.state(c1), conch.state(c2)

    r = conch("list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert len(lines) == 3
    rows = {ln.split()[0]: ln for ln in lines[1:]}
    header = lines[0]
    starts = [header.index(w) for w in ("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    for st in (s1, s2):
        row = rows[st["id"]]
        assert row.split() == [st["id"], str(st["pid"]), st["status"], st["bundle"],
                               st["created"], "root"]
        # a table: every value starts under its column's header
        for start, value in zip(starts, row.split()):
            assert row[start:start + len(value)] == value, (header, row)
    assert rows[c1].split()[2] == "created" and rows[c2].split()[2] == "running"

    r = conch("list", "-q")
    assert r.returncode == 0
    assert sorted(r.stdout.splitlines()) == sorted([c1, c2])

    for flag in ("--format", "-f"):
        r = conch("list", flag, "json")
        assert r.returncode == 0, r.stderr
        got = {d["id"]: d for d in json.loads(r.stdout)}
        assert set(got) == {c1, c2}
        for st in (s1, s2):
            assert got[st["id"]] == dict(st, owner="root")

    fails(conch("list", "--format", "yaml"), "invalid format option")


def test_list_with_no_containers_prints_only_the_header(conch):
    r = conch("list")
    assert r.returncode == 0
    assert r.stdout.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert conch("list", "-q").stdout == ""


# --- delete ------------------------------------------------------------------------

def test_delete_running_needs_force(conch, bg, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    pid = started(conch, bg, b, c)["pid"]

    fails(conch("delete", c), f"cannot delete container {c} that is not stopped: running")
    assert status_of(conch, c) == "running" and alive(pid)

    r = conch("delete", "--force", c)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    fails(conch("state", c), "container does not exist")
    wait_for(lambda: not alive(pid), what="the init to be gone")


def test_delete_created_container_kills_its_init(conch, bg, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    assert bg("create", "-b", b.path, c).returncode == 0
    pid = conch.state(c)["pid"]
    r = conch("delete", c)
    assert r.returncode == 0, r.stderr
    fails(conch("state", c), "container does not exist")
    wait_for(lambda: not alive(pid), what="the init to be gone")


def test_delete_stopped_container(conch, bg, make_bundle, cid):
    b = make_bundle(["true"])
    c = cid()
    assert bg("run", "-d", "-b", b.path, c).returncode == 0
    wait_status(conch, c, "stopped")
    r = conch("delete", c)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    fails(conch("state", c), "container does not exist")


def test_unknown_container(conch, cid):
    c = cid()
    fails(conch("delete", c), "container does not exist")
    r = conch("delete", "--force", c)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    r = conch("delete", "-f", c)
    assert r.returncode == 0, r.stderr
    fails(conch("state", c), "container does not exist")
    fails(conch("kill", c, "9"), "container does not exist")
    fails(conch("start", c), "container does not exist")


# --- start -------------------------------------------------------------------------

def test_start_twice(conch, bg, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    assert bg("create", "-b", b.path, c).returncode == 0
    assert conch("start", c).returncode == 0
    fails(conch("start", c), "cannot start an already running container")
    assert status_of(conch, c) == "running"


def test_start_of_run_detached(conch, bg, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    started(conch, bg, b, c)
    fails(conch("start", c), "cannot start an already running container")


def test_start_stopped(conch, bg, make_bundle, cid):
    b = make_bundle(["true"])
    c = cid()
    assert bg("run", "-d", "-b", b.path, c).returncode == 0
    wait_status(conch, c, "stopped")
    fails(conch("start", c), "cannot start a container that has stopped")
    assert status_of(conch, c) == "stopped"


# --- kill ----------------------------------------------------------------------------

def test_kill_stopped(conch, bg, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    started(conch, bg, b, c)
    assert conch("kill", c, "9").returncode == 0
    wait_status(conch, c, "stopped")
    fails(conch("kill", c, "9"), "container not running")
    fails(conch("kill", c), "container not running")


@pytest.mark.parametrize("sig", ["9", "KILL", "SIGKILL", "kill", "sigkill"])
def test_kill_with_sigkill_spellings(conch, bg, make_bundle, cid, sig):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    pid = started(conch, bg, b, c)["pid"]
    r = conch("kill", c, sig)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    assert wait_status(conch, c, "stopped")["pid"] == 0
    assert not alive(pid)


@pytest.mark.parametrize("sig", [None, "15", "TERM", "SIGTERM", "term"])
def test_kill_sigterm_reaches_a_trap(conch, bg, make_bundle, cid, sig):
    b = make_bundle(["sh", "-c", TRAP_TERM])
    c = cid()
    r = bg("run", "-d", "-b", b.path, c)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: "ready" in r.out.read_text(), what="the trap to be set")
    args = ("kill", c) if sig is None else ("kill", c, sig)
    assert conch(*args).returncode == 0
    wait_for(lambda: "got-TERM" in r.out.read_text(), what="the trap to run")
    wait_status(conch, c, "stopped")


def test_sigterm_without_a_handler_does_not_stop_pid_1(conch, bg, make_bundle, cid):
    # as with runc: the init of a pid namespace only gets signals it handles
    b = make_bundle(["sleep", "1000"])
    c = cid()
    started(conch, bg, b, c)
    assert conch("kill", c).returncode == 0
    time.sleep(0.2)
    assert status_of(conch, c) == "running"


@pytest.mark.parametrize("sig", ["FOO", "SIGNOPE", "SIG_DFL"])
def test_kill_unknown_signal_name(conch, bg, make_bundle, cid, sig):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    started(conch, bg, b, c)
    fails(conch("kill", c, sig), f'unknown signal "{sig}"')
    assert status_of(conch, c) == "running"


@pytest.mark.parametrize("sig", ["999", "-1", "65"])
def test_kill_bad_signal_number(conch, bg, make_bundle, cid, sig):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    started(conch, bg, b, c)
    r = conch("kill", c, sig)
    assert r.returncode == 1, r.stderr
    assert status_of(conch, c) == "running"


def test_kill_all_reaches_every_process(conch, bg, make_bundle, cid):
    # without a pid namespace, killing the init leaves its children: --all gets them too
    b = no_pid_ns(make_bundle(["sh", "-c", "sleep 1000 & echo $!; sleep 1000 & echo $!; "
                                           "echo ready; wait"]))
    c = cid()
    r = bg("run", "-d", "-b", b.path, c)
    assert r.returncode == 0, r.stderr
    text = wait_for(lambda: "ready" in r.out.read_text() and r.out.read_text(),
                    what="the children to start")
    children = [int(x) for x in text.split()[:2]]
    init = conch.state(c)["pid"]
    assert all(alive(p) for p in children + [init])

    r = conch("kill", "--all", c, "KILL")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: not any(alive(p) for p in children + [init]), what="all processes to die")
    assert wait_status(conch, c, "stopped")["pid"] == 0


def test_kill_without_all_only_signals_the_init(conch, bg, make_bundle, cid):
    b = no_pid_ns(make_bundle(["sh", "-c", "sleep 1000 & echo $!; echo ready; wait"]))
    c = cid()
    r = bg("run", "-d", "-b", b.path, c)
    assert r.returncode == 0, r.stderr
    text = wait_for(lambda: "ready" in r.out.read_text() and r.out.read_text(),
                    what="the child to start")
    child = int(text.split()[0])
    assert conch("kill", c, "KILL").returncode == 0
    wait_status(conch, c, "stopped")
    assert alive(child)
    # delete --force (the fixture's cleanup) must take the child too
    assert conch("delete", "--force", c).returncode == 0
    wait_for(lambda: not alive(child), what="the child to die")


# --- pid file ------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["create", "run -d"])
def test_pid_file(conch, bg, make_bundle, cid, tmp_path, how):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    pid_file = tmp_path / "init.pid"
    r = bg(*how.split(), "-b", b.path, "--pid-file", str(pid_file), c)
    assert r.returncode == 0, r.stderr
    # it is there, complete, the moment the command returns
    data = pid_file.read_bytes()
    assert re.fullmatch(rb"[0-9]+", data), data
    assert int(data) == conch.state(c)["pid"]
    assert [n for n in os.listdir(tmp_path) if n.startswith(".init.pid")] == []


@pytest.mark.parametrize("how", ["create", "run -d"])
def test_relative_pid_file_is_relative_to_the_cwd(conch, bg, make_bundle, cid, tmp_path, how):
    # not to the bundle: runc resolves it before it changes into the bundle directory
    b = make_bundle(["sleep", "1000"])
    work = tmp_path / "work"
    work.mkdir()
    c = cid()
    r = bg(*how.split(), "-b", b.path, "--pid-file", "rel.pid", c, cwd=work)
    assert r.returncode == 0, r.stderr
    assert int((work / "rel.pid").read_text()) == conch.state(c)["pid"]
    assert not os.path.exists(os.path.join(b.path, "rel.pid"))


# --- run -------------------------------------------------------------------------------

def test_run_passes_stdio_and_exit_code_and_deletes(conch, make_bundle, cid):
    b = make_bundle(["sh", "-c", "read x; echo out:$x; echo err >&2; exit 5"])
    c = cid()
    r = conch("run", "-b", b.path, c, input="in\n")
    assert r.returncode == 5
    assert r.stdout == "out:in\n"
    assert r.stderr == "err\n"
    fails(conch("state", c), "container does not exist")


@pytest.mark.parametrize("code", [0, 1, 255])
def test_run_exit_codes(conch, make_bundle, cid, code):
    b = make_bundle(["sh", "-c", f"exit {code}"])
    assert conch("run", "-b", b.path, cid()).returncode == code


@pytest.mark.parametrize("sig,code", [("KILL", 137), ("TERM", 143), ("USR1", 138)])
def test_run_exit_code_of_a_signalled_init(conch, make_bundle, cid, sig, code):
    # without a pid namespace the shell is not a namespace's init: it can kill itself
    b = no_pid_ns(make_bundle(["sh", "-c", f"kill -{sig} $$; sleep 5"]))
    c = cid()
    r = conch("run", "-b", b.path, c)
    assert r.returncode == code, r.stderr
    fails(conch("state", c), "container does not exist")


def test_run_exit_code_when_killed_from_outside(conch, make_bundle, cid):
    b = make_bundle(["sh", "-c", "echo ready; sleep 1000"])
    c = cid()
    p = conch.popen("run", "-b", b.path, c, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ready\n"
        os.kill(conch.state(c)["pid"], signal.SIGKILL)
        assert p.wait(10) == 137
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
    fails(conch("state", c), "container does not exist")


def test_run_keep_leaves_a_stopped_container(conch, make_bundle, cid):
    b = make_bundle(["sh", "-c", "exit 4"])
    c = cid()
    r = conch("run", "--keep", "-b", b.path, c)
    assert r.returncode == 4
    st = conch.state(c)
    assert st["status"] == "stopped" and st["pid"] == 0
    assert conch("delete", c).returncode == 0
    fails(conch("state", c), "container does not exist")


def test_run_detach_and_keep_conflict(conch, make_bundle, cid):
    b = make_bundle(["true"])
    c = cid()
    r = conch("run", "-d", "--keep", "-b", b.path, c)
    assert r.returncode == 1
    fails(conch("state", c), "container does not exist")


def test_run_detached_returns_with_the_container_running(conch, bg, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    t = time.monotonic()
    r = bg("run", "-d", "-b", b.path, c)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t < 10
    st = conch.state(c)
    assert st["status"] == "running"
    assert cmdline(st["pid"]) == [b"sleep", b"1000"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signals_to_a_foreground_run_reach_the_container(conch, make_bundle, cid, sig):
    name = signal.Signals(sig).name[3:]
    b = make_bundle(["sh", "-c", TRAP_TERM.replace("TERM", name)])
    c = cid()
    p = conch.popen("run", "-b", b.path, c, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ready\n"
        p.send_signal(sig)
        assert p.wait(10) == 7
        assert p.stdout.read() == f"got-{name}\n".encode()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
    fails(conch("state", c), "container does not exist")


# --- the truth of `status` ----------------------------------------------------------

def test_container_killed_from_outside_is_stopped(conch, bg, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    pid = started(conch, bg, b, c)["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_status(conch, c, "stopped")["pid"] == 0
    assert conch("list", "-q").stdout.split() == [c]
    assert conch("list").stdout.splitlines()[1].split()[1:3] == ["0", "stopped"]
    fails(conch("kill", c, "9"), "container not running")
    assert conch("delete", c).returncode == 0


def test_reused_pid_is_not_the_container(conch, bg, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    pid = started(conch, bg, b, c)["pid"]
    path = os.path.join(conch.root, c, "state")
    with open(path, "rb") as f:
        original = f.read()
    data = marshal.loads(original)
    assert "start_time" in data
    data["start_time"] = data["start_time"] + 12345
    try:
        with open(path, "wb") as f:
            marshal.dump(data, f)
        st = conch.state(c)
        assert st["status"] == "stopped" and st["pid"] == 0
        fails(conch("kill", c, "KILL"), "container not running")
        fails(conch("start", c), "cannot start a container that has stopped")
        # the process that now has the pid is not the container's: nobody touched it
        assert alive(pid)
    finally:
        with open(path, "wb") as f:
            f.write(original)
    assert status_of(conch, c) == "running"


# --- ids -----------------------------------------------------------------------------

def test_concurrent_creates_of_one_id(conch, make_bundle, cid, tmp_path):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    procs = []
    for i in range(20):
        with open(tmp_path / f"c{i}.out", "wb") as fo, open(tmp_path / f"c{i}.err", "wb") as fe:
            procs.append(conch.popen("create", "-b", b.path, c, stdin=subprocess.DEVNULL,
                                     stdout=fo, stderr=fe))
    codes = [p.wait(60) for p in procs]
    errs = [(tmp_path / f"c{i}.err").read_text() for i in range(20)]
    assert codes.count(0) == 1, list(zip(codes, errs))
    for code, err in zip(codes, errs):
        if code:
            assert code == 1
            assert "container with given ID already exists" in err, err
    st = conch.state(c)
    assert st["status"] == "created" and alive(st["pid"])
    assert conch("list", "-q").stdout.split() == [c]


def test_create_of_an_existing_id(conch, bg, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    assert bg("create", "-b", b.path, c).returncode == 0
    pid = conch.state(c)["pid"]
    r = bg("create", "-b", b.path, c)
    fails(r, "container with given ID already exists")
    st = conch.state(c)
    assert st["status"] == "created" and st["pid"] == pid


@pytest.mark.parametrize("bad", ["..", ".", "a/b", "a b", "", "../x"])
def test_invalid_ids_are_refused(conch, bg, make_bundle, tmp_path, bad):
    b = make_bundle(["true"])
    for args in (("create", "-b", b.path, bad), ("run", "-b", b.path, bad)):
        r = bg(*args)
        assert r.returncode == 1, r.stderr
        err = r.stderr.lower()
        assert ("container id cannot be empty" in err if not bad
                else "invalid container id format" in err), r.stderr  # lowered
    for cmd in ("state", "delete", "kill", "start"):
        r = conch(cmd, bad)
        assert r.returncode == 1
    assert not os.path.exists(os.path.join(conch.root, "state"))
    assert not os.path.exists(tmp_path / "state")
    assert not os.path.exists(os.path.join(conch.root, "a"))
    if os.path.isdir(conch.root):
        assert [n for n in os.listdir(conch.root) if not n.startswith(".")] == []


# --- hooks ---------------------------------------------------------------------------

def hook_script(path, body):
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(path, 0o755)
    return str(path)


HOOK_BODY = ('echo {kind} >> {log}; cat > {out}/{kind}.json; '
             'readlink /proc/self/ns/mnt > {out}/{kind}.mnt; '
             'if [ -d {probe} ]; then echo yes; else echo no; fi > {out}/{kind}.hostfs')


def test_hooks_run_in_order_with_the_state(conch, bg, make_bundle, cid, tmp_path):
    b = make_bundle(["sleep", "1000"], copy_rootfs=True)
    rootfs = b.config["root"]["path"]
    b.config["root"]["readonly"] = False
    b.config["annotations"] = {"org.example.hook": "yes"}
    os.mkdir(os.path.join(rootfs, "hookout"))
    os.mkdir(os.path.join(rootfs, "hooks"))
    host_out = os.path.join(rootfs, "hookout")
    env = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    hooks = {}
    for kind in ("prestart", "createRuntime", "createContainer", "poststart", "poststop"):
        path = hook_script(tmp_path / f"{kind}.sh", HOOK_BODY.format(
            kind=kind, log=f"{host_out}/log", out=host_out, probe=tmp_path))
        hooks[kind] = [{"path": path, "env": env}]
    # startContainer runs in the container, after pivot_root: its path is in the rootfs
    hook_script(os.path.join(rootfs, "hooks", "start.sh"), HOOK_BODY.format(
        kind="startContainer", log="/hookout/log", out="/hookout", probe=tmp_path))
    hooks["startContainer"] = [{"path": "/hooks/start.sh", "env": env}]
    b.config["hooks"] = hooks
    b.save()
    c = cid()

    def log():
        try:
            with open(os.path.join(host_out, "log")) as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    def hook_state(kind):
        with open(os.path.join(host_out, f"{kind}.json")) as f:
            d = json.load(f)
        assert d["id"] == c
        assert d["bundle"] == b.path
        assert d["ociVersion"] == b.config["ociVersion"]
        assert d["annotations"] == {"org.example.hook": "yes"}
        return d

    def read(kind, what):
        with open(os.path.join(host_out, f"{kind}.{what}")) as f:
            return f.read().strip()

    host_mnt = os.readlink("/proc/self/ns/mnt")
    r = bg("create", "-b", b.path, c)
    assert r.returncode == 0, r.stderr
    assert log() == ["prestart", "createRuntime", "createContainer"]
    pid = conch.state(c)["pid"]
    ctr_mnt = os.readlink(f"/proc/{pid}/ns/mnt")
    assert ctr_mnt != host_mnt
    for kind in ("prestart", "createRuntime"):
        d = hook_state(kind)
        assert d["status"] == "creating" and d["pid"] == pid
        assert read(kind, "mnt") == host_mnt  # in the runtime's namespace
    d = hook_state("createContainer")
    assert d["status"] == "creating" and d["pid"] > 0
    assert read("createContainer", "mnt") == ctr_mnt
    assert read("createContainer", "hostfs") == "yes"  # before pivot_root

    assert conch("start", c).returncode == 0
    assert log() == ["prestart", "createRuntime", "createContainer", "startContainer",
                     "poststart"]
    d = hook_state("startContainer")
    assert d["status"] == "created" and d["pid"] > 0
    assert read("startContainer", "mnt") == ctr_mnt
    assert read("startContainer", "hostfs") == "no"  # after pivot_root
    d = hook_state("poststart")
    assert d["status"] == "running" and d["pid"] == pid
    assert read("poststart", "mnt") == host_mnt

    assert conch("kill", c, "KILL").returncode == 0
    wait_status(conch, c, "stopped")
    assert "poststop" not in log()
    r = conch("delete", c)
    assert r.returncode == 0, r.stderr
    assert log()[-1] == "poststop" and log().count("poststop") == 1
    d = hook_state("poststop")
    assert d["status"] == "stopped"


def test_hook_args_and_env(conch, bg, make_bundle, cid, tmp_path):
    b = make_bundle(["sleep", "1000"])
    out = tmp_path / "args.out"
    b.config["hooks"] = {"prestart": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", f'echo "$0 $1 $FOO" > {out}; echo "$PWD" >> {out}', "a0", "a1"],
        "env": ["FOO=bar"]}]}
    b.save()
    r = bg("create", "-b", b.path, cid())
    assert r.returncode == 0, r.stderr
    # hooks run in the bundle directory, as runc runs them
    assert out.read_text().splitlines() == ["a0 a1 bar", b.path]


def test_hook_timeout_kills_the_hook(conch, bg, make_bundle, cid, tmp_path):
    b = make_bundle(["sleep", "1000"])
    # argv[0] names the test dir: a surviving hook would show up in the leak check
    marker = str(tmp_path / "slow-hook")
    b.config["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": [marker, "30"],
                                       "timeout": 1}]}
    b.save()
    c = cid()
    t = time.monotonic()
    r = bg("create", "-b", b.path, c)
    took = time.monotonic() - t
    assert r.returncode == 1
    assert "prestart" in r.stderr and "timed out" in r.stderr, r.stderr
    assert 0.9 < took < 10
    fails(conch("state", c), "container does not exist")
    hooks_alive = [p for p in os.listdir("/proc") if p.isdigit() and alive(p)
                   and marker.encode() in b"\0".join(_safe_cmdline(p))]
    assert hooks_alive == []


def _safe_cmdline(pid):
    try:
        return cmdline(pid)
    except OSError:
        return []


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create_and_leaves_nothing(conch, bg, make_bundle, cid,
                                                            tmp_path, kind):
    b = make_bundle(["sleep", "1000"])
    b.config["hooks"] = {kind: [{"path": "/bin/sh",
                                 "args": ["sh", "-c", "echo hook-said-no >&2; exit 3"]}]}
    b.save()
    c = cid()
    r = bg("create", "-b", b.path, c)
    assert r.returncode == 1
    assert "exit status 3" in r.stderr, r.stderr
    fails(conch("state", c), "container does not exist")
    assert conch("list", "-q").stdout == ""
    # run fails the same way
    r = conch("run", "-b", b.path, c)
    assert r.returncode == 1
    assert "exit status 3" in r.stderr, r.stderr
    fails(conch("state", c), "container does not exist")


def test_failing_poststart_hook_only_warns(conch, bg, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    b.config["hooks"] = {"poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 2"]}]}
    b.save()
    c = cid()
    assert bg("create", "-b", b.path, c).returncode == 0
    r = conch("start", c)
    assert r.returncode == 0, r.stderr
    assert "poststart" in r.stderr and "exit status 2" in r.stderr
    assert status_of(conch, c) == "running"


def test_failing_poststop_hook_only_warns(conch, bg, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    b.config["hooks"] = {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 2"]}]}
    b.save()
    c = cid()
    started(conch, bg, b, c)
    r = conch("delete", "--force", c)
    assert r.returncode == 0, r.stderr
    assert "poststop" in r.stderr and "exit status 2" in r.stderr
    fails(conch("state", c), "container does not exist")


def test_poststop_runs_after_a_foreground_run(conch, make_bundle, cid, tmp_path):
    b = make_bundle(["sh", "-c", "exit 0"])
    out = tmp_path / "poststop.json"
    b.config["hooks"] = {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}"]}]}
    b.save()
    c = cid()
    assert conch("run", "-b", b.path, c).returncode == 0
    d = json.loads(out.read_text())
    assert d["id"] == c and d["status"] == "stopped"


# --- console socket ------------------------------------------------------------------

def recv_console(conn):
    fds = array.array("i")
    msg, anc, flags, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4 * fds.itemsize))
    got = []
    for level, typ, data in anc:
        assert (level, typ) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
        a = array.array("i")
        a.frombytes(data[:len(data) - len(data) % a.itemsize])
        got.append(list(a))
    return msg, got, flags


def test_console_socket_gets_the_pty_master(conch, bg, make_bundle, cid, tmp_path):
    b = make_bundle(["sh"])
    b.process["terminal"] = True
    b.save()
    c = cid()
    path = str(tmp_path / "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    master = None
    try:
        listener.bind(path)
        listener.listen(1)
        r = bg("create", "-b", b.path, "--console-socket", path, c)
        assert r.returncode == 0, r.stderr
        listener.settimeout(5)
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            msg, fds, flags = recv_console(conn)
            assert msg
            assert not flags & socket.MSG_CTRUNC
            assert len(fds) == 1 and len(fds[0]) == 1, fds
            master = fds[0][0]
            assert os.isatty(master)
            # exactly one message: the runtime closes after it
            assert conn.recv(1) == b""
        assert conch("start", c).returncode == 0
        os.write(master, b"echo hi\n")
        out = read_until(master, rb"(?m)^hi\r?$")
        assert b"hi" in out
        os.write(master, b"exit 3\n")
        wait_status(conch, c, "stopped")
    finally:
        listener.close()
        if master is not None:
            os.close(master)


def test_terminal_without_console_socket_is_refused_detached(conch, bg, make_bundle, cid):
    b = make_bundle(["sh"])
    b.process["terminal"] = True
    b.save()
    c = cid()
    r = bg("create", "-b", b.path, c)
    assert r.returncode == 1
    assert "console socket" in r.stderr
    fails(conch("state", c), "container does not exist")


def test_console_socket_without_terminal_is_refused(conch, bg, make_bundle, cid, tmp_path):
    b = make_bundle(["sh"])
    c = cid()
    r = bg("create", "-b", b.path, "--console-socket", str(tmp_path / "nosock"), c)
    assert r.returncode == 1
    fails(conch("state", c), "container does not exist")


# --- --preserve-fds --------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 2])
def test_preserve_fds(conch, make_bundle, cid, n):
    # fds 3 and 4 are pipes (and not close-on-exec, as the shim's stray fd 3 is);
    # fds 3..2+n must reach the container, and none above
    b = make_bundle(["sh", "-c", "for i in 3 4 5; do readlink /proc/self/fd/$i || echo none; done"])
    c = cid()
    conch.ids.add(c)
    pipes = [os.pipe(), os.pipe()]
    try:
        ino = [os.fstat(r).st_ino for r, _ in pipes]
        argv = conch.cmd("run", "--preserve-fds", str(n), "-b", b.path, c)
        r = subprocess.run(with_fds({3: pipes[0][0], 4: pipes[1][0]}, argv),
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                           pass_fds=(pipes[0][0], pipes[1][0]))
    finally:
        for rd, wr in pipes:
            os.close(rd)
            os.close(wr)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    expect = [f"pipe:[{ino[i]}]" if i < n else "none" for i in range(2)] + ["none"]
    assert lines == expect


def test_preserve_fds_with_create(conch, bg, make_bundle, cid, tmp_path):
    b = make_bundle(["sh", "-c", "readlink /proc/self/fd/3 || echo none; "
                                 "readlink /proc/self/fd/4 || echo none"])
    c = cid()
    rd, wr = os.pipe()
    try:
        ino = os.fstat(rd).st_ino
        out = tmp_path / "pf.out"
        argv = conch.cmd("create", "--preserve-fds", "1", "-b", b.path, c)
        conch.ids.add(c)
        with open(out, "wb") as fo, open(tmp_path / "pf.err", "wb") as fe:
            p = subprocess.run(with_fds({3: rd}, argv), stdout=fo, stderr=fe, pass_fds=(rd,),
                               timeout=30, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, (tmp_path / "pf.err").read_text()
    finally:
        os.close(rd)
        os.close(wr)
    assert conch("start", c).returncode == 0
    wait_status(conch, c, "stopped")
    assert out.read_text().splitlines() == [f"pipe:[{ino}]", "none"]


# --- the same bundle under runc ------------------------------------------------------

@pytest.mark.runc
def test_state_and_errors_as_runc_prints_them(conch, runc, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    b.config["annotations"] = {"org.example.key": "value"}
    b.save()
    views = {}
    for rt in (runc, conch):
        c = cid()
        assert rt("create", "-b", b.path, c).returncode == 0
        created = rt.state(c)
        assert rt("start", c).returncode == 0
        running = rt.state(c)
        assert rt("kill", c, "KILL").returncode == 0
        stopped = wait_status(rt, c, "stopped")
        errors = [message(rt(*args).stderr).strip() for args in
                  (("kill", c, "9"), ("start", c), ("kill", c, "NOPE"))]
        assert rt("delete", c).returncode == 0
        errors += [message(rt(*args).stderr).strip() for args in
                   (("state", c), ("delete", c), ("kill", c, "9"))]
        assert rt("delete", "--force", c).returncode == 0
        views[rt.name] = (
            [{k: v for k, v in st.items() if k not in ("id", "pid", "created", "ociVersion")}
             for st in (created, running, stopped)],
            [list(st) for st in (created, running, stopped)],
            stopped["pid"], errors)
    assert views["conch"] == views["runc"]
