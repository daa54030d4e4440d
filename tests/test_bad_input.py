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
    # runtime-spec 1.2: linux.personality, process.ioPriority, scheduler, execCPUAffinity
    "personality-domain-unknown": (put("linux.personality", {"domain": "LINUX64"}),
                                   'linux.personality.domain: unknown domain "LINUX64"'),
    "personality-domain-missing": (put("linux.personality", {"flags": []}),
                                   "linux.personality.domain: missing"),
    "personality-string": (put("linux.personality", "LINUX"),
                           'linux.personality: expected object, got "LINUX"'),
    "ioprio-class-unknown": (put("process.ioPriority", {"class": "IOPRIO_CLASS_FOO"}),
                             'process.ioPriority.class: unknown class "IOPRIO_CLASS_FOO"'),
    "ioprio-class-missing": (put("process.ioPriority", {"priority": 1}),
                             "process.ioPriority.class: missing"),
    "ioprio-priority-too-high": (put("process.ioPriority", {"class": "IOPRIO_CLASS_BE",
                                                            "priority": 8}),
                                 "process.ioPriority.priority: 8 is out of range"),
    "scheduler-policy-unknown": (put("process.scheduler", {"policy": "SCHED_FOO"}),
                                 'process.scheduler.policy: unknown policy "SCHED_FOO"'),
    "scheduler-policy-missing": (put("process.scheduler", {"nice": 1}),
                                 "process.scheduler.policy: missing"),
    "scheduler-policy-iso": (put("process.scheduler", {"policy": "SCHED_ISO"}),
                             "process.scheduler.policy: SCHED_ISO is not implemented by Linux"),
    "scheduler-nice-out-of-range": (put("process.scheduler", {"policy": "SCHED_BATCH",
                                                              "nice": 20}),
                                    "process.scheduler.nice: 20 is out of range (-20 to 19)"),
    "scheduler-priority-not-rt": (put("process.scheduler", {"policy": "SCHED_OTHER",
                                                            "priority": 5}),
                                  "process.scheduler.priority: can only be set for SCHED_FIFO"),
    "scheduler-rt-without-priority": (put("process.scheduler", {"policy": "SCHED_FIFO"}),
                                      "process.scheduler.priority: 0 is out of range for "
                                      "SCHED_FIFO (1 to 99)"),
    "scheduler-runtime-not-deadline": (put("process.scheduler", {"policy": "SCHED_RR",
                                                                 "priority": 1,
                                                                 "runtime": 100000}),
                                       "process.scheduler.runtime: can only be set for "
                                       "SCHED_DEADLINE"),
    "scheduler-deadline-below-runtime": (put("process.scheduler", {
        "policy": "SCHED_DEADLINE", "runtime": 2000000, "deadline": 1000000}),
        "process.scheduler.deadline: 1000000 is less than runtime 2000000"),
    "scheduler-flag-unknown": (put("process.scheduler", {"policy": "SCHED_OTHER",
                                                         "flags": ["SCHED_FLAG_FOO"]}),
                               'process.scheduler.flags[0]: unknown flag "SCHED_FLAG_FOO"'),
    # valid as far as the config goes, refused by the kernel in the init (a period above
    # /proc/sys/kernel/sched_deadline_period_max_us): the init's error names the field
    "scheduler-refused-by-the-kernel": (put("process.scheduler", {
        "policy": "SCHED_DEADLINE", "runtime": 1000000, "deadline": 5000000,
        "period": 100 * 10**9}), "process.scheduler: sched_setattr SCHED_DEADLINE: "
                                 "invalid argument"),
    "cpu-affinity-bad-list": (put("process.execCPUAffinity", {"initial": "0-"}),
                              'process.execCPUAffinity.initial: invalid CPU list "0-"'),
    "cpu-affinity-reversed-range": (put("process.execCPUAffinity", {"final": "0,3-1"}),
                                    'process.execCPUAffinity.final: invalid range "3-1"'),
    "cpu-affinity-not-a-string": (put("process.execCPUAffinity", {"final": 1}),
                                  "process.execCPUAffinity.final: expected string, got 1"),
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
                   f"conch {cmd} failed: invalid container ID format"), msg
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
    assert msg == "invalid container ID format"


@pytest.mark.parametrize("cmd", ["create", "run"])
def test_create_of_an_existing_id_leaves_it_running(conch, make_bundle, cid, tmp_path, cmd):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    assert detached(conch, tmp_path, "run", "-d", "-b", b.path, c).returncode == 0
    before = conch.state(c)
    other = make_bundle(["true"])
    msg = one_error(detached(conch, tmp_path, cmd, "-b", other.path, c))
    assert msg == f"conch {cmd} failed: container with given ID already exists", msg  # runc's
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
    if sig.lstrip("-").isdigit():  # as runc: a number is sent as it is; the kernel refuses it
        assert msg == "unable to signal init: invalid argument", msg
    else:
        assert msg == f'unknown signal "{sig}"', msg
    assert conch.state(c) == before and running(conch, c)


def test_kill_with_too_many_arguments(conch, conch_bin, make_bundle, cid, tmp_path):
    b = make_bundle(["sleep", "1000"])
    c = cid()
    assert detached(conch, tmp_path, "run", "-d", "-b", b.path, c).returncode == 0
    r = conch("kill", c, "KILL", "TERM")
    assert usage_error(r) == f'{conch_bin}: "kill" requires a maximum of 2 argument(s)'
    assert running(conch, c)


def usage_error(r, incorrect="Incorrect Usage."):
    """A command line runc refuses: status 1, "Incorrect Usage" and the command's help
    on stdout, one logrus error line on stderr; returns its message."""
    out = r.stdout
    r.stdout = ""
    msg = one_error(r)
    assert out.startswith(incorrect + "\n\nNAME:\n   conch "), out
    return msg


@pytest.mark.parametrize("argv,expect", [
    (["create"], '"create" requires exactly 1 argument(s)'),
    (["run", "a", "b"], '"run" requires exactly 1 argument(s)'),
    (["state"], '"state" requires exactly 1 argument(s)'),
    (["delete", "a", "b"], '"delete" requires exactly 1 argument(s)'),
    (["kill"], '"kill" requires a minimum of 1 argument(s)'),
    (["exec"], '"exec" requires a minimum of 1 argument(s)'),
    (["ps"], '"ps" requires a minimum of 1 argument(s)'),
    (["list", "x"], '"list" requires exactly 0 argument(s)'),
    (["spec", "x"], '"spec" requires exactly 0 argument(s)'),
    (["features", "x"], '"features" requires exactly 0 argument(s)'),
])
def test_wrong_argument_counts_are_runc_s(conch, conch_bin, argv, expect):
    # runc names itself as it was called (os.Args[0]); so does conch (its launcher's path)
    assert usage_error(conch(*argv)) == f"{conch_bin}: {expect}"
    nothing_left(conch)


@pytest.mark.parametrize("argv,expect", [
    (["create", "--bogus", "x"], "flag provided but not defined: -bogus"),
    (["create", "-b"], "flag needs an argument: -b"),
    (["list", "--quiet=maybe"], 'invalid boolean value "maybe" for -quiet: parse error'),
    (["list", "-q=yes"], 'invalid boolean value "yes" for -q: parse error'),
    (["exec", "--tty=tRuE", "x", "true"], 'invalid boolean value "tRuE" for -tty: parse error'),
    (["exec", "--preserve-fds", "x", "c", "true"],
     'invalid value "x" for flag -preserve-fds: parse error'),
    (["events", "--interval", "5", "x"], 'invalid value "5" for flag -interval: parse error'),
])
def test_flag_errors_are_runc_s(conch, argv, expect):
    r = conch(*argv)
    assert usage_error(r, incorrect=f"Incorrect Usage: {expect}") == expect
    nothing_left(conch)


def test_unknown_command_and_unknown_global_flag(conch):
    r = conch("nosuchcommand")
    assert (r.returncode, r.stdout) == (3, "")  # urfave/cli's status for it, as runc
    assert re.search(r"level=error msg=\"No help topic for 'nosuchcommand'\\n\"\n$", r.stderr)
    r = conch("--bogus", "list")
    assert r.returncode == 1
    assert r.stdout.startswith("Incorrect Usage. flag provided but not defined: -bogus\n\nNAME:")
    assert 'level=error msg="flag provided but not defined: -bogus"' in r.stderr


def test_usage_error_of_exec_is_status_1_not_255(conch):
    # runc: 255 is for an exec that failed, 1 for a command line it refused
    assert conch("exec").returncode == 1
    assert conch("exec", "--bogus", "x", "true").returncode == 1


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


# --- what runc only warns about -----------------------------------------------------------

CAP_WARNING = "ignoring unknown or unavailable capabilities: [CAP_BOGUS NET_RAW cap_kill]"


@pytest.mark.parametrize("cmd", ["create", "run"])
def test_unknown_capabilities_are_ignored_with_runc_s_warning(conch, make_bundle, cid,
                                                              tmp_path, cmd):
    # runc 1.1: names are matched exactly ("CAP_" and upper case); an unknown one is not an
    # error but a warning when the capabilities are applied, the rest applied
    b = make_bundle(["sh", "-c", "grep CapBnd /proc/self/status"])
    b.process["capabilities"]["bounding"] = ["CAP_KILL", "cap_kill", "CAP_BOGUS", "NET_RAW"]
    b.save()
    c = cid()
    r = conch(cmd, "-b", b.path, c) if cmd == "run" else detached(conch, tmp_path, cmd, "-b",
                                                                  b.path, c)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r'time="[^"]+" level=warning msg="' + re.escape(CAP_WARNING) + '"\n',
                        r.stderr), r.stderr
    if cmd == "run":
        assert r.stdout == f"CapBnd:\t{1 << 5:016x}\n"  # CAP_KILL only
    else:
        conch("delete", "--force", c, check=True)
    # with --log the warning goes to the file only, as runc's logrus output
    log = tmp_path / "warn.json"
    r = conch("--log", log, "--log-format", "json", "run", "-b", b.path, cid())
    assert (r.returncode, r.stderr) == (0, "")
    (entry,) = [json.loads(ln) for ln in log.read_text().splitlines()]
    assert (entry["level"], entry["msg"]) == ("warning", CAP_WARNING)
