"""Invalid input: one clear line that names what is wrong, exit status 1, and
nothing left behind (no state dir, cgroup, mount or process: the `conch`
fixture checks those after each test; the tests also look at `list -q` and the
state root right after the failure).

Without --log an error is one logrus text line on stderr, as runc writes it; with
`--log FILE --log-format json` stderr has the bare message and FILE one JSON line.
"""

import json
import os
import re
import subprocess
import time

import pytest

LOGRUS = re.compile(r'^time="(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)" level=error '
                    r'msg="((?:[^"\\]|\\.)*)"\n$')
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


# --- helpers ------------------------------------------------------------------------

def detached(conch, tmp_path, *args, log=None):
    """Run conch with its stdio on files (a container that did get made keeps them)."""
    name = tmp_path / f"io-{time.monotonic_ns()}"
    glob = ["--log", str(log), "--log-format", "json"] if log else []
    with open(f"{name}.out", "wb") as fo, open(f"{name}.err", "wb") as fe:
        p = conch.popen(*glob, *args, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe)
        rc = p.wait(30)
    with open(f"{name}.out") as fo, open(f"{name}.err") as fe:
        return subprocess.CompletedProcess(p.args, rc, fo.read(), fe.read())


def one_error(r):
    """The message of a failed command: exit status 1, nothing on stdout, and
    exactly one logrus error line on stderr."""
    assert r.returncode == 1, f"rc {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1, f"not one line: {r.stderr!r}"
    m = LOGRUS.match(r.stderr)
    assert m, f"not a logrus error line: {r.stderr!r}"
    assert "Traceback" not in r.stderr
    return re.sub(r"\\(.)", r"\1", m.group(2))


def nothing_left(conch):
    r = conch("list", "-q")
    assert (r.returncode, r.stdout) == (0, "")
    if os.path.isdir(conch.root):
        assert os.listdir(conch.root) == []


def running(conch, c):
    return conch.state(c)["status"] == "running"


# --- config.json cases: (bundle edit, text the message contains) ----------------------------

def drop(path):
    def edit(b):
        d = b.config
        *parents, last = path.split(".")
        for p in parents:
            d = d[p]
        del d[last]
    return edit


def put(path, value):
    def edit(b):
        d = b.config
        *parents, last = path.split(".")
        for p in parents:
            d = d[int(p)] if isinstance(d, list) else d[p]
        d[last] = value
    return edit


def raw(text_of):
    def edit(b):
        b.write_raw(text_of(json.dumps(b.config, indent=2)))
        return True  # written: do not save()
    return edit


def no_config(b):
    os.unlink(os.path.join(b.path, "config.json"))
    return True


def add_ns(*nss):
    def edit(b):
        b.linux["namespaces"] = b.linux["namespaces"] + list(nss)
    return edit


def add_mount(m):
    def edit(b):
        b.config["mounts"] = b.config["mounts"] + [m]
    return edit


CASES = {
    "config-missing": (no_config, "config.json: no such file in bundle"),
    "json-truncated": (raw(lambda t: t[:len(t) // 2]), "config.json: invalid JSON"),
    "json-trailing-garbage": (raw(lambda t: t + "\n}garbage"), "config.json: invalid JSON"),
    "json-empty": (raw(lambda t: ""), "config.json: invalid JSON"),
    "top-level-array": (raw(lambda t: "[" + t + "]"),
                        "config.json: expected object, got an array"),
    "top-level-string": (raw(lambda t: '"config"'),
                         'config.json: expected object, got "config"'),
    "uid-string": (put("process.user.uid", "x"), 'process.user.uid: expected integer, got "x"'),
    "uid-negative": (put("process.user.uid", -1), "process.user.uid: -1 is out of range"),
    "args-string": (put("process.args", "sh"), 'process.args: expected array, got "sh"'),
    "env-number": (put("process.env", ["PATH=/bin", 3]),
                   "process.env[1]: expected string, got 3"),
    "hostname-number": (put("hostname", 7), "hostname: expected string, got 7"),
    "namespaces-object": (put("linux.namespaces", {"type": "pid"}),
                          "linux.namespaces: expected array, got an object"),
    "mount-options-string": (put("mounts.1.options", "nosuid"),
                             'mounts[1].options: expected array, got "nosuid"'),
    "root-missing": (drop("root"), "root: missing"),
    "root-path-missing": (drop("root.path"), "root.path: missing"),
    "rootfs-missing": (put("root.path", "/nonexistent/rootfs"),
                       "root.path: rootfs /nonexistent/rootfs is not a directory"),
    "process-missing": (drop("process"), "process: missing"),
    "cwd-relative": (put("process.cwd", "tmp"),
                     'process.cwd: must be an absolute path, got "tmp"'),
    "args-empty": (put("process.args", []), "process.args: must contain at least one element"),
    "namespace-unknown": (add_ns({"type": "bogus"}),
                          'linux.namespaces[5].type: unknown namespace type "bogus"'),
    "namespace-twice": (add_ns({"type": "pid"}),
                        "linux.namespaces[5].type: namespace pid given twice"),
    "namespace-path-missing": (put("linux.namespaces", [
        {"type": "pid"}, {"type": "mount"}, {"type": "uts"},
        {"type": "network", "path": "/proc/nonexistent/ns/net"}]),
        "linux.namespaces[3].path: /proc/nonexistent/ns/net:"),
    "capability-unknown": (put("process.capabilities.effective", ["CAP_KILL", "CAP_BOGUS"]),
                           'process.capabilities.effective[1]: unknown capability "CAP_BOGUS"'),
    "rlimit-unknown": (put("process.rlimits", [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]),
                       'process.rlimits[0].type: unknown rlimit "RLIMIT_BOGUS"'),
    "rlimit-twice": (put("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 9, "hard": 9},
                                             {"type": "RLIMIT_NOFILE", "soft": 8, "hard": 8}]),
                     "process.rlimits[1].type: RLIMIT_NOFILE given twice"),
    "rlimit-soft-above-hard": (put("process.rlimits", [
        {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 10}]), "process.rlimits:"),
    "mount-type-unknown": (add_mount({"destination": "/mnt/x", "type": "bogusfs",
                                      "source": "bogus"}), "/mnt/x"),
    "bind-source-missing": (add_mount({"destination": "/mnt/y", "type": "bind",
                                       "source": "/nonexistent/src", "options": ["rbind"]}),
                            "/mnt/y"),
    "bind-without-source": (add_mount({"destination": "/mnt/z", "type": "bind"}),
                            "mounts[7].source: a bind mount needs a source"),
    "binary-missing": (put("process.args", ["/nonexistent"]),
                       'exec: "/nonexistent": stat /nonexistent: no such file or directory'),
    "binary-not-in-path": (put("process.args", ["nonexistent"]),
                           'exec: "nonexistent": executable file not found in $PATH'),
    "binary-not-executable": (put("process.args", ["/etc/passwd"]),
                              'exec: "/etc/passwd": permission denied'),
    "binary-is-a-directory": (put("process.args", ["/tmp"]), 'exec: "/tmp": permission denied'),
    "prestart-hook-fails": (put("hooks", {"prestart": [{"path": "/bin/false"}]}),
                            "prestart hook /bin/false: exit status 1"),
    "prestart-hook-missing": (put("hooks", {"prestart": [{"path": "/nonexistent/hook"}]}),
                              "prestart hook /nonexistent/hook"),
    "cwd-cannot-be-made": (put("process.cwd", "/etc/passwd/sub"),
                           "process.cwd: mkdir /etc/passwd/sub: not a directory"),
    "cwd-is-a-file": (put("process.cwd", "/etc/passwd"),
                      "process.cwd: mkdir /etc/passwd: not a directory"),
    "terminal-without-console-socket": (put("process.terminal", True), "console socket"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("cmd", ["create", "run"])
def test_bad_config(conch, make_bundle, cid, tmp_path, cmd, case):
    edit, expect = CASES[case]
    b = make_bundle(["true"])
    if not edit(b):
        b.save()
    args = (cmd, "-d", "-b", b.path, cid()) if case.startswith("terminal") and cmd == "run" \
        else (cmd, "-b", b.path, cid())
    msg = one_error(detached(conch, tmp_path, *args))
    assert msg.startswith(f"conch {cmd} failed: "), msg
    assert expect in msg, msg
    nothing_left(conch)


def test_mount_errors_name_the_destination_and_the_cause(conch, make_bundle, cid, tmp_path):
    b = make_bundle(["true"])
    for m, cause in (({"destination": "/mnt/x", "type": "bogusfs", "source": "bogus"},
                      "no such device"),
                     ({"destination": "/mnt/y", "type": "bind", "source": "/nonexistent/src",
                       "options": ["rbind"]}, "stat /nonexistent/src: no such file or directory")):
        b.config["mounts"] = b.config["mounts"][:7] + [m]
        b.save()
        msg = one_error(conch("run", "-b", b.path, cid()))
        # as runc words it: the destination in double quotes, Go's lower-case errno text
        assert f'error mounting "{m["source"]}" to rootfs at "{m["destination"]}": ' in msg, msg
        assert msg.endswith(cause), msg
        nothing_left(conch)


# --- the command line ---------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["../x", "a/b", "a b", "..", ".", "x" * 1025, ""])
@pytest.mark.parametrize("cmd", ["create", "run"])
def test_bad_ids(conch, make_bundle, tmp_path, cmd, bad):
    b = make_bundle(["true"])
    msg = one_error(detached(conch, tmp_path, cmd, "-b", b.path, bad))
    assert msg == (f"conch {cmd} failed: container id cannot be empty" if not bad else
                   f"conch {cmd} failed: invalid container id format: {bad}"), msg
    nothing_left(conch)
    assert not os.path.exists(os.path.join(os.path.dirname(conch.root), "x"))


@pytest.mark.parametrize("cmd", ["create", "run"])
def test_id_longer_than_a_file_name(conch, make_bundle, tmp_path, cmd):
    b = make_bundle(["true"])
    msg = one_error(detached(conch, tmp_path, cmd, "-b", b.path, "x" * 300))
    assert "too long" in msg.lower(), msg
    nothing_left(conch)


@pytest.mark.parametrize("cmd", ["state", "start", "kill", "delete"])
def test_bad_id_for_other_commands(conch, cmd):
    msg = one_error(conch(cmd, "../x"))
    assert msg == "invalid container id format: ../x"


@pytest.mark.parametrize("cmd", ["create", "run"])
def test_create_of_an_existing_id_leaves_it_running(conch, make_bundle, cid, tmp_path, cmd):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    assert detached(conch, tmp_path, "run", "-d", "-b", b.path, c).returncode == 0
    before = conch.state(c)
    other = make_bundle(["true"])
    msg = one_error(detached(conch, tmp_path, cmd, "-b", other.path, c))
    assert msg.startswith(f"conch {cmd} failed: ") and c in msg and "exists" in msg, msg
    assert conch.state(c) == before and running(conch, c)
    assert conch("list", "-q").stdout == c + "\n"


@pytest.mark.parametrize("sig", ["FOO", "SIGFOO", "SIG_DFL", "KILLL", "-9", "99999", ""])
def test_kill_with_a_bad_signal_leaves_the_container_running(conch, make_bundle, cid,
                                                            tmp_path, sig):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    assert detached(conch, tmp_path, "run", "-d", "-b", b.path, c).returncode == 0
    before = conch.state(c)
    msg = one_error(conch("kill", c, sig))
    if sig and not sig.lstrip("-").isdigit():
        assert msg == f'unknown signal "{sig}"', msg
    assert conch.state(c) == before and running(conch, c)


def test_kill_with_too_many_arguments(conch, make_bundle, cid, tmp_path):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    assert detached(conch, tmp_path, "run", "-d", "-b", b.path, c).returncode == 0
    one_error(conch("kill", c, "KILL", "TERM"))
    assert running(conch, c)


@pytest.mark.parametrize("argv,expect", [
    (["create"], '"create" requires exactly 1 argument(s)'),
    (["run", "a", "b"], '"run" requires exactly 1 argument(s)'),
    (["create", "--bogus", "x"], "flag provided but not defined: --bogus"),
    (["create", "-b"], "flag needs an argument: -b"),
    (["nosuchcommand"], "No help topic for 'nosuchcommand'"),
])
def test_usage_errors(conch, argv, expect):
    msg = one_error(conch(*argv))
    assert expect in msg, msg
    nothing_left(conch)


# --- logging ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", ["create", "run"])
def test_json_log(conch, make_bundle, cid, tmp_path, cmd):
    b = make_bundle(["true"])
    b.process["user"]["uid"] = "x"
    b.save()
    log = tmp_path / "log.json"
    r = detached(conch, tmp_path, cmd, "-b", b.path, cid(), log=log)
    expect = f'conch {cmd} failed: process.user.uid: expected integer, got "x"'
    assert (r.returncode, r.stdout, r.stderr) == (1, "", expect + "\n")
    lines = log.read_text().splitlines()
    assert len(lines) == 1, lines
    entry = json.loads(lines[0])
    assert list(entry) == ["level", "msg", "time"]
    assert entry["level"] == "error" and entry["msg"] == expect
    assert RFC3339.match(entry["time"]), entry["time"]
    nothing_left(conch)


def test_json_log_appends(conch, cid, tmp_path):
    log = tmp_path / "log.json"
    log.write_text('{"level":"info","msg":"earlier","time":"2026-01-01T00:00:00Z"}\n')
    for _ in range(2):
        r = conch("--log", log, "--log-format", "json", "state", cid())
        assert (r.returncode, r.stderr) == (1, "container does not exist\n")
    lines = [json.loads(ln) for ln in log.read_text().splitlines()]
    assert [e["msg"] for e in lines] == ["earlier"] + ["container does not exist"] * 2


def test_text_log_file(conch, cid, tmp_path):
    log = tmp_path / "log.txt"
    r = conch("--log", log, "state", cid())
    assert (r.returncode, r.stderr) == (1, "container does not exist\n")
    m = LOGRUS.match(log.read_text())
    assert m and m.group(2) == "container does not exist"


def test_bad_log_format(conch, cid):
    msg = one_error(conch("--log-format", "yaml", "state", cid()))
    assert "yaml" in msg
