"""`conch exec` as a user and an engine drive it: every flag through what the process
sees (`id`, `pwd`, `env`, /proc/self/status, /proc/self/fd, exit codes), a real
terminal, signals, runc on the same bundle, and the exec helper's security.

The exec'd process starts from the container's own config.json process (cwd, env,
user, capabilities, rlimits; not its terminal setting); bundles from make_bundle
have terminal=false. Containers run `sleep 600` and are force-deleted by the
fixtures.
"""

import array
import fcntl
import json
import os
import pty
import re
import shutil
import signal
import socket
import struct
import subprocess
import termios
import time

import pytest
from helpers import read_until, state_record, wait_for

STATUS = "grep -E '^(Cap|NoNewPrivs|Groups|Uid|Gid)' /proc/self/status"
FDS = "cd /proc/$$/fd && echo *"  # the shell's own fds (the glob's dir fd is the last)
TRAP_TERM = 'trap "echo got-TERM; exit 7" TERM; echo ready; sleep 1000 & wait'
CAP_SYS_ADMIN, CAP_NET_RAW, CAP_KILL = 21, 13, 5


# --- helpers -----------------------------------------------------------------------



def started(rt, bundle, c):
    """`run -d` a container; return its init's host pid."""
    r = rt("run", "-d", "-b", bundle.path, c)
    assert r.returncode == 0, r.stderr
    st = rt.state(c)
    assert st["status"] == "running"
    return st["pid"]


def sleeper(make_bundle, **process):
    b = make_bundle(["sleep", "600"])
    b.process.update(process)
    return b.save()


def conch_state(conch, c):
    return state_record(conch.root, c)


def cgroup_dir(conch, c, ctrl):
    return conch_state(conch, c)["cgroup"]["dirs"][ctrl]


def container_procs(conch, c):
    with open(os.path.join(cgroup_dir(conch, c, "pids"), "cgroup.procs")) as f:
        return sorted(int(x) for x in f.read().split())


def one_error_line(r):
    """A failed exec: runc's exit code and one clear line on stderr."""
    assert r.returncode == 255, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "exec failed: " in lines[0]
    assert "Traceback" not in r.stderr
    return lines[0]


def message(stderr):
    """The msg of a logrus line, unescaped."""
    m = re.search(r'msg="((?:[^"\\]|\\.)*)"', stderr)
    return m.group(1).replace('\\"', '"') if m else stderr


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(")") + 2] not in "ZX"


def kill_and_wait(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_for(lambda: not alive(pid), 5, f"pid {pid} to die")


def status_field(pid, name):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].split()
    return None


def caps_of(text):
    """{CapInh: int, ...} from /proc/self/status lines."""
    return {k: int(v, 16) for k, v in re.findall(r"^(Cap\w+):\s+([0-9a-f]+)$", text, re.M)}


_DUP_EXEC = ("import fcntl, os, sys\n"
             "pairs = [tuple(map(int, a.split(':'))) for a in sys.argv[1].split(',') if a]\n"
             "tmp = [(t, fcntl.fcntl(s, fcntl.F_DUPFD, 500)) for t, s in pairs]\n"
             "for s in {s for _, s in pairs} - {t for t, _ in pairs}:\n"
             "    os.close(s)\n"
             "for t, d in tmp:\n"
             "    os.dup2(d, t)\n"
             "    os.close(d)\n"
             "os.execv(sys.argv[2], sys.argv[2:])\n")


def run_with_fds(rt, fds, *args, timeout=30):
    """Run the runtime with fds {target: our fd} open in it, NOT close-on-exec (as the
    stray fds an engine or a shell leaves), and nothing else above stdio."""
    spec = ",".join(f"{t}:{s}" for t, s in fds.items())
    argv = ["/usr/bin/python3", "-c", _DUP_EXEC, spec] + rt.cmd(*args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, pass_fds=tuple(set(fds.values())))


class Pipes:
    """Some pipes whose read ends are handed to a runtime; closed on exit."""

    def __init__(self, n):
        self.pairs = [os.pipe() for _ in range(n)]

    def __getitem__(self, i):
        return self.pairs[i][0]

    def ino(self, i):
        return os.fstat(self.pairs[i][0]).st_ino

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for r, w in self.pairs:
            os.close(r)
            os.close(w)


def fd_table(stdout):
    """{fd: link target} from FD_TABLE's `ls -l`."""
    out = {}
    for line in stdout.splitlines():
        if " -> " in line:
            left, _, target = line.partition(" -> ")
            out[int(left.split()[-1])] = target
    return out


# the shell's fds, listed while it waits for ls (it opens none of its own)
FD_TABLE = "ls -l /proc/$$/fd; true"


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


def take_console(listener):
    """Accept the runtime's connection: exactly one message with exactly one fd, a pty."""
    listener.settimeout(10)
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(10)
        msg, fds, flags = recv_console(conn)
        assert not flags & socket.MSG_CTRUNC
        assert len(fds) == 1 and len(fds[0]) == 1, fds
        master = fds[0][0]
        assert conn.recv(1) == b""  # nothing after it
    assert os.isatty(master)
    return master


def set_winsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def listener_at(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(4)
    return s


@pytest.fixture
def bg(tmp_path):
    """bg(rt, *args) -> Popen with stdout and stderr on files; .out()/.err() read them."""
    procs = []

    def start(rt, *args):
        i = len(procs)
        out, err = tmp_path / f"bg{i}.out", tmp_path / f"bg{i}.err"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            p = rt.popen(*args, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe)
        p.out = out.read_text
        p.err = err.read_text
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


# --- the process and the namespaces it joins ------------------------------------

def test_exec_passes_output_and_exit_code(conch, make_bundle, cid):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    r = conch("exec", c, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r = conch("exec", c, "sh", "-c", "cat; echo done", input="from stdin\n")
    assert (r.returncode, r.stdout) == (0, "from stdin\ndone\n")


NS_FILES = ("cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time",
            "time_for_children", "user", "uts")


@pytest.mark.parametrize("userns", [False, True], ids=["rootful", "userns"])
def test_exec_joins_every_namespace_and_the_cgroup(conch, make_bundle, cid, tmp_path, userns):
    b = sleeper(make_bundle)
    b.linux["namespaces"] += [{"type": "cgroup"}, {"type": "time"}]
    if userns:
        b.linux["namespaces"].append({"type": "user"})
        # identity-mapped: the session's rootfs is under a 0700 directory of root's
        b.linux["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
        b.linux["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    b.save()
    c = cid()
    init = started(conch, b, c)
    pf = tmp_path / "exec.pid"
    r = conch("exec", "-d", "--pid-file", pf, c, "sleep", "600")
    assert r.returncode == 0, r.stderr
    pid = int(pf.read_text())
    try:
        assert pid != init
        for ns in NS_FILES:
            assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/{init}/ns/{ns}"), ns
            if ns != "user" or userns:
                assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
        with open(f"/proc/{pid}/cgroup") as f, open(f"/proc/{init}/cgroup") as g:
            assert f.read() == g.read()
        assert os.stat(f"/proc/{pid}/root").st_ino == os.stat(f"/proc/{init}/root").st_ino
        assert status_field(pid, "Uid") == status_field(init, "Uid")
        if userns:
            with open(f"/proc/{pid}/uid_map") as f:
                assert f.read().split() == ["0", "0", "65536"]
    finally:
        kill_and_wait(pid)
    # and from inside: the same namespaces as pid 1, the cgroup namespace's root
    r = conch("exec", c, "sh", "-c", "for n in cgroup ipc mnt net pid time user uts; do "
              "[ $(readlink /proc/self/ns/$n) = $(readlink /proc/1/ns/$n) ] || echo $n differs; "
              "done; cat /proc/self/cgroup; id -u")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert not [x for x in lines if "differs" in x]
    assert all(x.endswith(":/") for x in lines[:-1]), lines
    assert lines[-1] == "0"


def test_exec_is_in_the_cgroups_before_it_runs(conch, make_bundle, cid):
    # what it reads first thing: every hierarchy, the container's, each time (conch moves
    # it into cgroup2 directories itself: the process must wait for that)
    c = cid()
    init = started(conch, sleeper(make_bundle), c)
    with open(f"/proc/{init}/cgroup") as f:
        want = f.read()
    for _ in range(15):
        r = conch("exec", c, "cat", "/proc/self/cgroup")
        assert (r.returncode, r.stdout) == (0, want), r.stderr


def test_exec_joins_the_time_namespace_with_its_offsets(conch, make_bundle, cid):
    b = sleeper(make_bundle)
    b.linux["namespaces"].append({"type": "time"})
    b.linux["timeOffsets"] = {"monotonic": {"secs": 864000, "nanosecs": 0},
                              "boottime": {"secs": 864000, "nanosecs": 0}}
    b.save()
    c = cid()
    started(conch, b, c)
    r = conch("exec", c, "cat", "/proc/uptime")
    assert r.returncode == 0, r.stderr
    with open("/proc/uptime") as f:
        host = float(f.read().split()[0])
    inside = float(r.stdout.split()[0])
    assert 864000 - 5 < inside - host < 864000 + 5


def test_exec_gets_the_container_process_settings(conch, make_bundle, cid):
    b = sleeper(make_bundle, cwd="/etc", env=["PATH=/bin", "FROM_CONFIG=1"],
                noNewPrivileges=True,
                rlimits=[{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000}])
    b.process["user"].update({"uid": 1000, "gid": 100, "additionalGids": [5], "umask": 0o027})
    b.process["capabilities"] = {k: ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
                                 for k in ("bounding", "effective", "permitted")}
    # a non-root user keeps across execve only what is ambient (so also inheritable)
    b.process["capabilities"].update(inheritable=["CAP_KILL"], ambient=["CAP_KILL"])
    b.save()
    c = cid()
    started(conch, b, c)
    r = conch("exec", c, "sh", "-c", "id; pwd; env | sort; umask; ulimit -n; ulimit -Hn; "
              + STATUS)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "uid=1000(user) gid=100(users) groups=5(tty)"
    assert lines[1] == "/etc"
    assert "FROM_CONFIG=1" in lines and "PATH=/bin" in lines and "HOME=/home/user" in lines
    assert "0027" in lines and "512" in lines and "1000" in lines
    caps = caps_of(r.stdout)
    kill = 1 << CAP_KILL
    assert caps == {"CapInh": kill, "CapPrm": kill, "CapEff": kill, "CapAmb": kill,
                    "CapBnd": kill | 1 << 10}  # CAP_NET_BIND_SERVICE
    assert "NoNewPrivs:\t1" in r.stdout


# --- flags -----------------------------------------------------------------------------

def test_cwd_flag(conch, make_bundle, cid):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    r = conch("exec", "--cwd", "/usr/bin", c, "pwd")
    assert (r.returncode, r.stdout) == (0, "/usr/bin\n")
    assert "absolute" in one_error_line(conch("exec", "--cwd", "usr", c, "pwd"))
    line = one_error_line(conch("exec", "--cwd", "/nonexistent", c, "pwd"))
    assert "/nonexistent" in line and "no such file or directory" in line


def test_env_flag_is_appended_and_later_wins(conch, make_bundle, cid):
    c = cid()
    started(conch, sleeper(make_bundle, env=["PATH=/bin:/usr/bin", "A=config", "TERM=xterm"]), c)
    r = conch("exec", "-e", "A=1", "--env", "B=2", "-e", "A=3", "-e", "PATH=/bin", c, "env")
    assert r.returncode == 0, r.stderr
    env = r.stdout.splitlines()
    assert sorted(env) == sorted(["PATH=/bin", "A=3", "B=2", "TERM=xterm", "HOME=/root"])


@pytest.mark.parametrize("flags, out, home", [
    (["-u", "1000"], "uid=1000(user) gid=0(root) groups=0(root)", "/home/user"),
    (["--user", "1000:1000"], "uid=1000(user) gid=1000(user) groups=0(root)", "/home/user"),
    (["-u", "65534:65534"], "uid=65534(nobody) gid=65534(nogroup) groups=0(root)",
     "/nonexistent"),
    (["-u", "4242"], "uid=4242 gid=0(root) groups=0(root)", "/"),
    (["-g", "10"], "uid=0(root) gid=0(root) groups=0(root),10", "/root"),
    (["-u", "1000:100", "-g", "10,20", "--additional-gids", "30"],
     "uid=1000(user) gid=100(users) groups=0(root),10,20,30", "/home/user"),
])
def test_user_and_additional_gids(conch, make_bundle, cid, flags, out, home):
    # the config's additionalGids [0] stay: -g appends, as runc's does
    b = sleeper(make_bundle)
    b.process["user"]["additionalGids"] = [0]
    b.save()
    c = cid()
    started(conch, b, c)
    r = conch("exec", *flags, c, "sh", "-c", "id; echo $HOME")
    assert (r.returncode, r.stdout) == (0, f"{out}\n{home}\n"), r.stderr


@pytest.mark.parametrize("flags", [
    ["-u", "abc"], ["-u", "1000:x"], ["-u", "-1"], ["-u", "4294967296"], ["-u", "1:2:3"],
    ["-g", "x"], ["-g", "-1"], ["-g", "10,y"], ["-g", "4294967296"],
], ids=lambda f: " ".join(f))
def test_bad_user_or_gids(conch, make_bundle, cid, flags):
    c = cid()
    init = started(conch, sleeper(make_bundle), c)
    r = conch("exec", *flags, c, "sh", "-c", "echo ran")
    line = one_error_line(r)
    assert ("--user" in line) if flags[0] == "-u" else ("--additional-gids" in line)
    assert r.stdout == ""
    assert container_procs(conch, c) == [init]


def test_no_new_privs_flag(conch, make_bundle, cid):
    c = cid()
    started(conch, sleeper(make_bundle, noNewPrivileges=False), c)
    assert "NoNewPrivs:\t0" in conch("exec", c, "sh", "-c", STATUS).stdout
    assert "NoNewPrivs:\t1" in conch("exec", "--no-new-privs", c, "sh", "-c", STATUS).stdout


@pytest.mark.runc
def test_no_new_privs_false_overrides_the_config_as_runc(conch, runc, make_bundle, cid):
    # runc applies --no-new-privs only when it is given, and then with its value
    b = sleeper(make_bundle, noNewPrivileges=True)
    got = {}
    for rt in (runc, conch):
        c = cid()
        started(rt, b, c)
        got[rt.name] = []
        for flags in ([], ["--no-new-privs=false"], ["--no-new-privs=0"], ["--no-new-privs=F"],
                      ["--no-new-privs"], ["--no-new-privs=true"]):
            r = rt("exec", *flags, c, "grep", "NoNewPrivs", "/proc/self/status")
            assert r.returncode == 0, (rt.name, flags, r.stderr)
            got[rt.name].append(r.stdout.split()[-1])
    assert got["conch"] == got["runc"] == ["1", "0", "0", "0", "1", "1"]


def test_boolean_flags_take_a_value_as_urfave(conch, make_bundle, cid):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    r = conch("exec", "--tty=false", "-t=0", "--detach=false", "-d=f", "--no-subreaper=false",
              "--ignore-paused=FALSE", c, "sh", "-c", "tty; echo done")
    assert (r.returncode, r.stdout) == (0, "not a tty\ndone\n"), r.stderr
    r = conch("exec", "--detach=true", c, "sh", "-c", "sleep 0.2")
    assert (r.returncode, r.stdout) == (0, "")  # returned at once: detached


@pytest.mark.runc
def test_cap_flag_names_as_runc(conch, runc, make_bundle, cid):
    # runc takes the name as given: CAP_NET_RAW; NET_RAW, cap_net_raw are unknown to it,
    # warned about and ignored
    b = sleeper(make_bundle)
    got = {}
    for rt in (runc, conch):
        c = cid()
        started(rt, b, c)
        got[rt.name] = []
        for name in ("CAP_NET_RAW", "NET_RAW", "cap_net_raw"):
            r = rt("exec", "--cap", name, c, "grep", "CapEff", "/proc/self/status")
            assert r.returncode == 0, (rt.name, name, r.stderr)
            warning = message(r.stderr) if r.stderr else ""
            assert not r.stderr or "level=warning" in r.stderr, r.stderr
            got[rt.name].append((int(r.stdout.split()[-1], 16) >> CAP_NET_RAW & 1, warning))
    assert got["conch"] == got["runc"] == [
        (1, ""), (0, "ignoring unknown or unavailable capabilities: [NET_RAW]"),
        (0, "ignoring unknown or unavailable capabilities: [cap_net_raw]")]


# reopened for appending only: a file's own fd would write over them from offset 0
REOPEN = ("echo out >> /proc/self/fd/1; echo err >> /proc/self/fd/2; "
          "stat -L -c %u /proc/self/fd/1 >> /proc/self/fd/1")


@pytest.mark.runc
def test_stdio_is_given_to_the_user_as_runc(conch, runc, make_bundle, cid, tmp_path):
    # runc's fixStdioPermissions: a non-root process can reopen its stdio through
    # /proc/self/fd (files and pipes the caller made; /dev/null is left alone)
    b = sleeper(make_bundle)
    for rt in (runc, conch):
        c = cid()
        started(rt, b, c)
        # foreground, stdio on files of the test (runc passes pipes of its own)
        r = rt("exec", "-u", "1000", c, "sh", "-c", REOPEN)
        assert (r.returncode, r.stdout, r.stderr) == (0, "out\n1000\n", "err\n"), rt.name
        # detached, stdout a pipe the test made, stderr a file
        err = tmp_path / f"{rt.name}.err"
        with open(err, "wb") as fe:
            p = rt.popen("exec", "-d", "-u", "1000", c, "sh", "-c", REOPEN,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=fe)
        out = p.communicate(timeout=20)[0]
        assert (p.returncode, out, err.read_text()) == (0, b"out\n1000\n", "err\n"), rt.name
        st = os.stat(err)
        assert (st.st_uid, st.st_gid) == (1000, 0), rt.name  # the uid only, as runc
    assert os.stat("/dev/null").st_uid == 0


def test_stdio_of_root_or_of_another_user_is_left_alone(conch, make_bundle, cid, tmp_path):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    # the process runs as root: nothing to give
    path = tmp_path / "out"
    with open(path, "wb") as f:
        p = conch.popen("exec", "-d", c, "true", stdin=subprocess.DEVNULL, stdout=f)
        assert p.wait(20) == 0
    assert os.stat(path).st_uid == 0
    # a file another user owns is not the caller's to give away (runc would)
    os.chown(path, 2000, 2000)
    with open(path, "wb") as f:
        p = conch.popen("exec", "-d", "-u", "1000", c, "sh", "-c", "echo x > /proc/self/fd/1",
                        stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.DEVNULL)
        assert p.wait(20) == 0
    wait_for(lambda: len(json.loads(conch("ps", "--format", "json", c).stdout)) == 1,
             what="the exec'd process gone")
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, st.st_size) == (2000, 2000, 0)


@pytest.mark.runc
def test_a_terminal_is_given_to_the_user_as_runc(conch, runc, make_bundle, cid, tmp_path):
    b = sleeper(make_bundle)
    got = {}
    for rt in (runc, conch):
        c = cid()
        started(rt, b, c)
        path = tmp_path / f"{rt.name}.sock"
        listener = listener_at(path)
        master = None
        try:
            p = rt.popen("exec", "-t", "-d", "--console-socket", path, "-u", "1000", c,
                         "sh", "-c", 'stat -c "owner=%u:%g" $(tty); read x',
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
            master = take_console(listener)
            assert p.wait(10) == 0
            got[rt.name] = re.search(rb"owner=\d+:\d+", read_until(master, rb"owner=\d+:\d+"))[0]
            os.write(master, b"\n")
        finally:
            listener.close()
            if master is not None:
                os.close(master)
    assert got["conch"] == got["runc"] == b"owner=1000:5"


def test_cap_flag_adds_to_every_set_but_inheritable(conch, make_bundle, cid):
    b = sleeper(make_bundle)
    b.process["capabilities"]["inheritable"] = ["CAP_KILL"]
    b.process["capabilities"]["ambient"] = ["CAP_KILL"]
    b.save()
    c = cid()
    started(conch, b, c)
    before = caps_of(conch("exec", c, "sh", "-c", STATUS).stdout)
    r = conch("exec", "-c", "CAP_SYS_ADMIN", "--cap", "CAP_NET_RAW", c, "sh", "-c", STATUS)
    assert r.returncode == 0, r.stderr
    after = caps_of(r.stdout)
    added = 1 << CAP_SYS_ADMIN | 1 << CAP_NET_RAW
    for k in ("CapBnd", "CapEff", "CapPrm"):
        assert after[k] == before[k] | added, k
    assert after["CapInh"] == before["CapInh"] == 1 << CAP_KILL  # never inheritable
    # ambient asked for, but the kernel only raises what is also inheritable (as runc)
    assert after["CapAmb"] == 1 << CAP_KILL
    # as runc: an unknown name (CAP_NOPE; NET_RAW without its prefix) is a warning, no error
    r = conch("exec", "-c", "CAP_NOPE", "-c", "NET_RAW", c, "sh", "-c", STATUS)
    assert r.returncode == 0, r.stderr
    assert caps_of(r.stdout) == before
    assert r.stderr.endswith('level=warning msg="ignoring unknown or unavailable capabilities: '
                             '[CAP_NOPE NET_RAW]"\n'), r.stderr


def test_apparmor_and_process_label_the_host_cannot_apply_are_refused(conch, make_bundle, cid):
    # running unconfined when confinement was asked for would be silent; runc fails too on
    # a host without AppArmor and SELinux (this one)
    if os.path.exists("/sys/module/apparmor") or os.path.exists("/sys/fs/selinux/enforce"):
        pytest.skip("the host has AppArmor or SELinux")
    c = cid()
    init = started(conch, sleeper(make_bundle), c)
    for flags, lsm in ((["--apparmor", "my-profile"], "apparmor"),
                       (["--process-label", "system_u:system_r:t:s0"], "selinux")):
        r = conch("exec", *flags, c, "sh", "-c", "echo ran")
        assert lsm in one_error_line(r).lower()
        assert r.stdout == ""
    assert container_procs(conch, c) == [init]


def test_preserve_fds(conch, make_bundle, cid):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    with Pipes(3) as p:
        for n in (0, 1, 2):
            r = run_with_fds(conch, {3: p[0], 4: p[1], 5: p[2]},
                             "exec", "--preserve-fds", str(n), c, "sh", "-c", FD_TABLE)
            assert r.returncode == 0, r.stderr
            fds = fd_table(r.stdout)
            assert {fd: t for fd, t in fds.items() if fd > 2} \
                == {3 + i: f"pipe:[{p.ino(i)}]" for i in range(n)}, fds


def test_preserve_fds_that_are_not_open_are_refused(conch, make_bundle, cid):
    # before: conch's own fds filled the numbers, and the process got them -- among
    # them conch's (the host's) pid namespace and the sync socket
    c = cid()
    init = started(conch, sleeper(make_bundle), c)
    with Pipes(1) as p:
        r = run_with_fds(conch, {3: p[0]}, "exec", "--preserve-fds", "10", c,
                         "sh", "-c", FD_TABLE)
    assert "--preserve-fds" in one_error_line(r) and "fd 4" in r.stderr
    assert r.stdout == ""
    assert container_procs(conch, c) == [init]


def test_pass_fd_moves_host_fds(conch, make_bundle, cid):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    with Pipes(3) as p:
        a, b, x = (f"pipe:[{p.ino(i)}]" for i in range(3))
        # M:N to a free number; two swapped; and many targets, over the numbers
        # conch itself uses for the container's namespaces and its sockets; with
        # --preserve-fds (host fd 3 is x); M not asked for is not passed on
        cases = [
            (["--pass-fd", "9:5"], {5: a}),
            (["--pass-fd", "9:4", "--pass-fd", "8:3"], {4: a, 3: b}),
            (["--pass-fd", "8:9", "--pass-fd", "9:8"], {9: b, 8: a}),
            ([x for n in range(3, 16) for x in ("--pass-fd", f"9:{n}")],
             {n: a for n in range(3, 16)}),
            (["--pass-fd", "9:40", "--preserve-fds", "1"], {3: x, 40: a}),
            (["--pass-fd", "3:5", "--preserve-fds", "2"], {3: x, 4: x, 5: x}),
        ]
        for flags, want in cases:
            r = run_with_fds(conch, {9: p[0], 8: p[1], 3: p[2], 4: p[2]}, "exec", *flags, c,
                             "sh", "-c", FD_TABLE)
            assert r.returncode == 0, (flags, r.stderr)
            fds = fd_table(r.stdout)
            assert {fd: t for fd, t in fds.items() if fd > 2} == want, (flags, fds)


@pytest.mark.parametrize("value", ["3", "x:3", "3:y", "-1:3", "99:3"])
def test_bad_pass_fd(conch, make_bundle, cid, value):
    c = cid()
    init = started(conch, sleeper(make_bundle), c)
    r = conch("exec", "--pass-fd", value, c, "sh", "-c", "echo ran")
    assert "--pass-fd" in one_error_line(r)
    assert r.stdout == "" and container_procs(conch, c) == [init]


def test_exec_fd_runs_the_binary_behind_a_host_fd(conch, make_bundle, cid):
    busybox = shutil.which("busybox")
    if not busybox:
        pytest.skip("no host busybox")
    c = cid()
    started(conch, sleeper(make_bundle), c)
    fd = os.open(busybox, os.O_RDONLY)
    try:
        # /no/such/sh is not in the container: only the fd can run; busybox runs
        # the applet named by argv[0]
        r = run_with_fds(conch, {6: fd}, "exec", "--exec-fd", "6", c, "/no/such/sh", "-c",
                         "echo from-fd; " + FDS)
    finally:
        os.close(fd)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["from-fd", "0 1 2 3"]  # the exec fd is not passed on
    assert "--exec-fd" in one_error_line(conch("exec", "--exec-fd", "77", c, "true"))


def test_pid_files_of_a_detached_exec(conch, make_bundle, cid, tmp_path):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    d = tmp_path / "pids"
    d.mkdir()
    r = conch("exec", "-d", "--pid-file", "host.pid", "--internal-pid-file", d / "inner.pid",
              c, "sleep", "600", cwd=d)
    assert r.returncode == 0, r.stderr
    # written before exec returns, atomically: bare digits, no temporary files left
    assert sorted(os.listdir(d)) == ["host.pid", "inner.pid"]
    host, inner = (d / "host.pid").read_text(), (d / "inner.pid").read_text()
    assert host.isdigit() and inner.isdigit()
    pid = int(host)
    try:
        assert alive(pid)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f.read() == b"sleep\x00600\x00"
        assert status_field(pid, "NSpid") == [host, inner]
        r = conch("exec", c, "cat", f"/proc/{inner}/cmdline")
        assert r.stdout == "sleep\x00600\x00"
    finally:
        kill_and_wait(pid)


def test_internal_pid_file_of_a_foreground_exec(conch, make_bundle, cid, tmp_path):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    pf = tmp_path / "inner.pid"
    r = conch("exec", "--internal-pid-file", pf, c, "sh", "-c", "sleep 0.2; echo $$")
    assert r.returncode == 0, r.stderr
    assert pf.read_text() == r.stdout.strip()


def test_detach_returns_while_the_process_runs(conch, make_bundle, cid, tmp_path):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    pf = tmp_path / "p.pid"
    t0 = time.monotonic()
    r = conch("exec", "--detach", "--pid-file", pf, c, "sh", "-c", "sleep 600")
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 5
    pid = int(pf.read_text())
    assert alive(pid)
    kill_and_wait(pid)


def test_process_json(conch, make_bundle, cid, tmp_path):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    p = {"args": ["sh", "-c", "id; pwd; echo $X; umask; " + STATUS], "cwd": "/tmp",
         "env": ["PATH=/bin", "X=from-json"], "terminal": False,
         "user": {"uid": 1000, "gid": 1000, "additionalGids": [100], "umask": 0o077},
         "capabilities": {k: ["CAP_KILL"] for k in ("bounding", "effective", "permitted",
                                                    "inheritable", "ambient")},
         "noNewPrivileges": True}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(p))
    r = conch("exec", "-p", path, c)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:4] == ["uid=1000(user) gid=1000(user) groups=100(users)", "/tmp", "from-json",
                         "0077"]
    caps = caps_of(r.stdout)
    assert set(caps.values()) == {1 << CAP_KILL}
    assert "NoNewPrivs:\t1" in r.stdout


@pytest.mark.parametrize("text, what", [
    ('{"args": ["pwd"], "cwd": "tmp"}', "cwd"),
    ('{"args": ["pwd"], "cwd": ""}', "cwd"),
    ('{"args": ["pwd"]}', "cwd"),
    ('{"args": [], "cwd": "/"}', "args"),
    ('{"cwd": "/"}', "args"),
    ('{"args": [""], "cwd": "/"}', "args"),
    ('{"args": ["pwd"], "cwd": "/",', "JSON"),
    (None, "no such file"),
    ('{"args": ["pwd"], "cwd": "/", "scheduler": {"policy": "SCHED_FOO"}}',
     "process.scheduler.policy: unknown policy"),
    ('{"args": ["pwd"], "cwd": "/", "scheduler": {"policy": "SCHED_DEADLINE", "runtime": 1000000,'
     ' "deadline": 5000000, "period": 100000000000}}',
     "process.scheduler: sched_setattr SCHED_DEADLINE: invalid argument"),
    ('{"args": ["pwd"], "cwd": "/", "ioPriority": {"class": "RT"}}',
     "process.ioPriority.class: unknown class"),
    ('{"args": ["pwd"], "cwd": "/", "execCPUAffinity": {"initial": "0-x"}}',
     "process.execCPUAffinity.initial: invalid CPU list"),
    ('{"args": ["pwd"], "cwd": "/", "execCPUAffinity": {"initial": "4000"}}',
     "process.execCPUAffinity.initial: sched_setaffinity 4000: invalid argument"),
    ('{"args": ["pwd"], "cwd": "/", "execCPUAffinity": {"final": "4000"}}',
     "process.execCPUAffinity.final: sched_setaffinity 4000: invalid argument"),
], ids=["relative-cwd", "empty-cwd", "no-cwd", "empty-args", "no-args", "empty-arg0",
        "bad-json", "missing-file", "scheduler-policy", "scheduler-refused", "ioprio-class",
        "affinity-syntax", "affinity-initial-offline", "affinity-final-offline"])
def test_bad_process_json(conch, make_bundle, cid, tmp_path, text, what):
    c = cid()
    init = started(conch, sleeper(make_bundle), c)
    path = tmp_path / "process.json"
    if text is not None:
        path.write_text(text)
    r = conch("exec", "-p", path, c)
    assert what.lower() in one_error_line(r).lower()
    assert container_procs(conch, c) == [init]


def test_empty_args_without_process_json(conch, make_bundle, cid):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    assert "process args cannot be empty" in one_error_line(conch("exec", c))
    r = conch("exec")
    assert r.returncode != 0 and "requires a minimum of 1 argument" in r.stderr


def test_exec_in_a_stopped_or_unknown_container(conch, make_bundle, cid):
    c = cid()
    assert conch("run", "-d", "-b", make_bundle(["true"]).path, c).returncode == 0
    wait_for(lambda: conch.state(c)["status"] == "stopped", what="the container to stop")
    assert "cannot exec in a stopped container" in one_error_line(conch("exec", c, "true"))
    assert "container does not exist" in one_error_line(conch("exec", cid(), "true"))


def test_exec_in_a_paused_container(conch, make_bundle, cid, bg):
    c = cid()
    init = started(conch, sleeper(make_bundle), c)
    (freezer,) = conch_state(conch, c)["freezer"]

    def freeze(v):
        with open(freezer, "w") as f:
            f.write(v)

    freeze("FROZEN")
    try:
        wait_for(lambda: conch.state(c)["status"] == "paused", what="paused")
        line = one_error_line(conch("exec", c, "sh", "-c", "echo ran"))
        assert "cannot exec in a paused container (use --ignore-paused to override)" in line
        assert container_procs(conch, c) == [init]
        # --ignore-paused: it goes in, and freezes with the container until it thaws
        p = bg(conch, "exec", "--ignore-paused", c, "sh", "-c", "echo ran")
        wait_for(lambda: len(container_procs(conch, c)) == 2, what="the exec to join")
        time.sleep(0.2)
        assert p.poll() is None and p.out() == ""
    finally:
        freeze("THAWED")
    assert p.wait(10) == 0, p.err()
    assert p.out() == "ran\n"


def test_cgroup_flag_puts_the_process_in_a_sub_cgroup(conch, make_bundle, cid):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    dirs = conch_state(conch, c)["cgroup"]["dirs"]
    made = []
    try:
        for ctrl, d in dirs.items():
            os.mkdir(os.path.join(d, "sub"))
            made.append(os.path.join(d, "sub"))
            if ctrl == "cpuset":  # a v1 cpuset cgroup takes no task until it has cpus and mems
                for f in ("cpuset.cpus", "cpuset.mems"):
                    with open(os.path.join(d, f)) as src:
                        value = src.read()
                    with open(os.path.join(d, "sub", f), "w") as dst:
                        dst.write(value)

        def cgroups(*flags):
            """{hierarchy as in the state record ("" for cgroup2): path} of the exec'd process."""
            r = conch("exec", *flags, c, "cat", "/proc/self/cgroup")
            assert r.returncode == 0, r.stderr
            got = {ctrl.replace("name=", ""): path for line in r.stdout.splitlines()
                   for _, ctrl, path in [line.split(":", 2)]}
            return {k: v for k, v in got.items() if k in dirs}

        one = cgroups("--cgroup", "pids:sub")
        assert one["pids"].endswith(f"/{c}/sub")
        assert all(path.endswith(f"/{c}") for ctrl, path in one.items() if ctrl != "pids"), one
        every = cgroups("--cgroup", "sub")
        assert set(every) == set(dirs)
        assert all(path.endswith(f"/{c}/sub") for path in every.values()), every
        for bad, why in (("pids:missing", "does not exist"), ("missing", "does not exist"),
                         ("pids:../..", "inside"), ("/abs", "inside"),
                         ("nosuchctrl:sub", "no nosuchctrl")):
            assert why in one_error_line(conch("exec", "--cgroup", bad, c, "true")), bad
    finally:
        for sub in made:
            wait_for(lambda: not open(os.path.join(sub, "cgroup.procs")).read(), what="empty")
            os.rmdir(sub)


# --- scheduling: process.ioPriority, scheduler, execCPUAffinity; linux.personality ------

def stat_of(text):
    """(nice, rt_priority, policy): fields 19, 40 and 41 of a /proc/PID/stat line."""
    f = text[text.rindex(")") + 2:].split()
    return int(f[19 - 3]), int(f[40 - 3]), int(f[41 - 3])


def two_cpus():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    return cpus[:2]


def cpu_list(cpus):
    """A set of CPUs as the kernel writes it in Cpus_allowed_list ("0-2,5")."""
    out = []
    for c in sorted(cpus):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in out)


def exec_json(conch, c, tmp_path, **process):
    p = {"args": ["sh", "-c", "cat /proc/self/stat; ionice -p $$; "
                  "grep Cpus_allowed_list /proc/self/status"],
         "cwd": "/", "env": ["PATH=/bin"], "terminal": False, **process}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(p))
    r = conch("exec", "-p", path, c)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_exec_gets_the_container_scheduling(conch, make_bundle, cid, tmp_path):
    first, second = two_cpus()
    b = sleeper(make_bundle, scheduler={"policy": "SCHED_BATCH", "nice": 3},
                ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 6},
                execCPUAffinity={"initial": str(first), "final": str(second)})
    c = cid()
    init = started(conch, b, c)
    expect = [(3, 0, 3), "best-effort: prio 6", f"Cpus_allowed_list:\t{second}"]
    # without -p: the container's process, as for every other setting
    r = conch("exec", c, "sh", "-c", "cat /proc/self/stat; ionice -p $$; "
              "grep Cpus_allowed_list /proc/self/status")
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert [stat_of(out[0])] + out[1:] == expect
    # a process.json without them: the container's too (as runc)
    out = exec_json(conch, c, tmp_path).splitlines()
    assert [stat_of(out[0])] + out[1:] == expect
    # with its own: those
    out = exec_json(conch, c, tmp_path, scheduler={"policy": "SCHED_IDLE"},
                    ioPriority={"class": "IOPRIO_CLASS_IDLE"},
                    execCPUAffinity={"final": str(first)}).splitlines()
    assert [stat_of(out[0])] + out[1:] == [(0, 0, 5), "idle", f"Cpus_allowed_list:\t{first}"]
    # execCPUAffinity is never the init's (runtime-spec); the scheduler and I/O priority are
    assert status_field(init, "Cpus_allowed_list") == status_field(os.getpid(),
                                                                   "Cpus_allowed_list")
    with open(f"/proc/{init}/stat") as f:
        assert stat_of(f.read()) == (3, 0, 3)


@pytest.mark.parametrize("aff, expect", [
    ({"initial": "{1}"}, "{1}"),  # only initial: the process stays where it started
    ({"initial": "{0},{1}", "final": "{0}"}, "{0}"),
    ({"initial": "{0}", "final": "{0},{1}"}, "{0},{1}"),
    ({"final": "{1}"}, "{1}"),
    ({"initial": "", "final": ""}, None),  # empty: not set
], ids=["initial", "initial-final", "final-wider", "final", "empty"])
def test_exec_cpu_affinity(conch, make_bundle, cid, tmp_path, aff, expect):
    cpus = two_cpus()
    c = cid()
    started(conch, sleeper(make_bundle), c)
    aff = {k: v.format(*cpus) for k, v in aff.items()}
    want = cpu_list(os.sched_getaffinity(0)) if expect is None else \
        cpu_list(int(x) for x in expect.format(*cpus).split(","))
    out = exec_json(conch, c, tmp_path, execCPUAffinity=aff).splitlines()
    assert out[-1] == f"Cpus_allowed_list:\t{want}"


def test_exec_io_priority_seen_from_the_host(conch, make_bundle, cid, tmp_path):
    from conch import syscalls
    c = cid()
    init = started(conch, sleeper(make_bundle, ioPriority={"class": "IOPRIO_CLASS_RT",
                                                           "priority": 2}), c)
    assert syscalls.ioprio_get(init) == (1, 2)
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"args": ["sleep", "600"], "cwd": "/", "env": ["PATH=/bin"],
                                "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 5}}))
    pf = tmp_path / "exec.pid"
    r = conch("exec", "-d", "--pid-file", pf, "-p", path, c)
    assert r.returncode == 0, r.stderr
    pid = int(pf.read_text())
    try:
        assert syscalls.ioprio_get(pid) == (2, 5)
    finally:
        kill_and_wait(pid)


def test_exec_gets_the_container_personality(conch, make_bundle, cid, tmp_path):
    b = sleeper(make_bundle)
    b.linux["personality"] = {"domain": "LINUX32"}
    c = cid()
    started(conch, b.save(), c)
    r = conch("exec", c, "cat", "/proc/self/personality")
    assert (r.returncode, r.stdout) == (0, "00000008\n"), r.stderr
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"args": ["cat", "/proc/self/personality"], "cwd": "/",
                                "env": ["PATH=/bin"]}))
    r = conch("exec", "-p", path, c)
    assert (r.returncode, r.stdout) == (0, "00000008\n"), r.stderr


# --- terminal -----------------------------------------------------------------------

def test_tty_flag_errors(conch, make_bundle, cid, tmp_path):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    assert "console socket" in one_error_line(conch("exec", "-t", "-d", c, "true"))
    assert "console socket" in one_error_line(
        conch("exec", "--console-socket", tmp_path / "nope", c, "true"))
    assert "console socket" in one_error_line(
        conch("exec", "-t", "--console-socket", tmp_path / "nope", c, "true"))


def spawn_on_pty(argv, rows, cols):
    """argv with a new pty as its controlling terminal and stdio; (Popen, master, slave)."""
    master, slave = pty.openpty()
    set_winsize(slave, rows, cols)
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                         preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    return p, master, slave


def test_exec_tty_through_a_real_terminal(conch, make_bundle, cid):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    p, master, slave = spawn_on_pty(conch.cmd("exec", "-t", c, "sh"), 30, 100)
    try:
        before = termios.tcgetattr(slave)
        read_until(master, rb"# ")
        # raw on the caller's terminal while the container's pty does the echo
        lflag = termios.tcgetattr(slave)[3]
        assert not lflag & (termios.ECHO | termios.ICANON)
        os.write(master, b"echo $((6*7))\n")
        out = read_until(master, rb"42\r\n")
        assert b"echo $((6*7))" in out  # the echo of what was typed
        os.write(master, b"tty; stty size\n")
        read_until(master, rb"/dev/pts/\d+\r\n30 100\r\n")  # copied from the caller
        set_winsize(master, 40, 120)  # the kernel sends SIGWINCH to conch

        def resized():
            os.write(master, b"stty size\n")
            try:
                read_until(master, rb"40 120\r\n", timeout=1)
                return True
            except AssertionError:
                return False
        wait_for(resized, 10, "the window size to follow")
        os.write(master, b"exit 3\n")
        assert p.wait(10) == 3
        assert termios.tcgetattr(slave) == before  # the caller's mode is restored
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
        os.close(slave)


def test_exec_tty_exit_by_signal(conch, make_bundle, cid):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    p, master, slave = spawn_on_pty(conch.cmd("exec", "-t", c, "sh", "-c", "kill -KILL $$"),
                                    24, 80)
    try:
        before = termios.tcgetattr(slave)
        assert p.wait(10) == 137
        assert termios.tcgetattr(slave) == before
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
        os.close(slave)


def test_tty_without_a_terminal_on_stdio(conch, make_bundle, cid):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    r = conch("exec", "-t", c, "sh", "-c", "tty; exit 5")
    assert r.returncode == 5, r.stderr
    assert re.fullmatch(r"/dev/pts/\d+\r?\n", r.stdout)


@pytest.mark.parametrize("detach", [False, True], ids=["foreground", "detached"])
def test_console_socket_gets_the_pty_master(conch, make_bundle, cid, tmp_path, bg, detach):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    path = tmp_path / "console.sock"
    listener = listener_at(path)
    master = None
    try:
        p = bg(conch, "exec", "-t", *(["-d"] if detach else []), "--console-socket", path, c,
               "sh", "-c", "tty; read x; echo got-$x; exit 4")
        master = take_console(listener)
        if detach:
            assert p.wait(10) == 0, p.err()
        read_until(master, rb"/dev/pts/\d+\r\n")
        os.write(master, b"hello\n")
        read_until(master, rb"got-hello")
        if not detach:
            assert p.wait(10) == 4, p.err()
        assert p.out() == ""
    finally:
        listener.close()
        if master is not None:
            os.close(master)


@pytest.mark.runc
def test_terminal_of_the_config_is_not_inherited(conch, runc, make_bundle, cid, tmp_path):
    # a container made with a terminal: exec without -t has none, as with runc
    b = sleeper(make_bundle, terminal=True)
    path = tmp_path / "console.sock"
    listener = listener_at(path)
    masters = []
    try:
        results = {}
        for rt in (runc, conch):
            c = cid()
            r = rt("run", "-d", "--console-socket", path, "-b", b.path, c)
            assert r.returncode == 0, r.stderr
            masters.append(take_console(listener))
            r = rt("exec", c, "sh", "-c", "tty; echo $?")
            results[rt.name] = (r.returncode, r.stdout)
        assert results["conch"] == results["runc"] == (0, "not a tty\n1\n")
    finally:
        listener.close()
        for m in masters:
            os.close(m)


# --- signals and exit codes -----------------------------------------------------------

@pytest.mark.parametrize("script, code", [
    ("exit 0", 0), ("exit 3", 3), ("exit 255", 255),
    ("kill -TERM $$", 128 + 15), ("kill -KILL $$", 128 + 9), ("kill -USR1 $$", 128 + 10),
])
def test_exit_codes(conch, make_bundle, cid, script, code):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    assert conch("exec", c, "sh", "-c", script).returncode == code


@pytest.mark.parametrize("sig, code, out", [
    (signal.SIGTERM, 7, "got-TERM\n"),      # reaches the trap
    (signal.SIGINT, 128 + 2, ""),          # no trap: the process dies of it
    (signal.SIGUSR1, 128 + 10, ""),
])
def test_signals_to_a_foreground_exec_reach_the_process(conch, make_bundle, cid, bg, sig, code,
                                                          out):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    script = TRAP_TERM if sig == signal.SIGTERM else "echo ready; exec sleep 1000"
    p = bg(conch, "exec", c, "sh", "-c", script)
    wait_for(lambda: "ready" in p.out(), what="ready")
    p.send_signal(sig)
    assert p.wait(10) == code
    assert p.out() == "ready\n" + out


def test_exec_killed_from_outside(conch, make_bundle, cid, bg, tmp_path):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    pf = tmp_path / "p.pid"
    p = bg(conch, "exec", "--pid-file", pf, c, "sleep", "1000")
    pid = int(wait_for(lambda: pf.exists() and pf.read_text(), what="the pid file"))
    os.kill(pid, signal.SIGKILL)
    assert p.wait(10) == 137


# --- the same exec under runc ---------------------------------------------------------

DIFF_CASES = [
    ["sh", "-c", "echo out; echo err >&2; exit 3"],
    ["sh", "-c", "kill -TERM $$"],
    ["sh", "-c", "kill -KILL $$"],
    ["id"], ["pwd"], ["env"],
    # (not the soft RLIMIT_NOFILE: runc 1.1.5's exec gets 512 or 1000 from run to run, a
    # race with Go raising its own; conch's is checked in test_exec_gets_the_container_...)
    ["sh", "-c", STATUS + "; ulimit -Hn; umask; echo $HOME"],
    ["--cwd", "/etc", "pwd"],
    ["-e", "A=1", "-e", "A=2", "-e", "PATH=/bin", "-e", "TERM=vt100", "env"],
    ["-u", "1000", "sh", "-c", "id; echo $HOME"],
    ["-u", "1000:1000", "sh", "-c", STATUS],
    ["-g", "10", "-g", "20", "id"],
    ["--no-new-privs", "sh", "-c", STATUS],
    ["-c", "CAP_SYS_ADMIN", "-c", "CAP_NET_RAW", "sh", "-c", STATUS],
    ["--cwd", "/tmp", "-u", "65534:65534", "sh", "-c", "pwd; id; echo $HOME"],
    ["sh", "-c", FDS],
    # failures: runc's exit code and the words engines match
    (["nonexistent"], "executable file not found in $PATH"),
    (["/etc/passwd"], "permission denied"),
    (["--cwd", "/nonexistent", "pwd"], "no such file or directory"),
    (["--cwd", "relative", "pwd"], "absolute path"),
    (["-u", "abc", "id"], "abc"),
    ([], "process args cannot be empty"),
]


@pytest.mark.runc
def test_exec_output_and_exit_codes_as_runc(conch, runc, make_bundle, cid):
    b = sleeper(make_bundle, noNewPrivileges=False,
                rlimits=[{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000}])
    # (not user.umask: runc 1.1 applies it to the init only; conch to every process)
    b.process["user"]["additionalGids"] = [5]
    b.process["capabilities"]["inheritable"] = ["CAP_KILL"]
    b.process["capabilities"]["ambient"] = ["CAP_KILL"]
    b.save()
    ids = {}
    for rt in (runc, conch):
        ids[rt.name] = cid()
        started(rt, b, ids[rt.name])
    for case in DIFF_CASES:
        args, fragment = case if isinstance(case, tuple) else (case, None)
        got = {}
        for rt in (runc, conch):
            # flags go before the id, the command after it
            i = 0
            while i < len(args) and args[i].startswith("-"):
                i += 1 if args[i] == "--no-new-privs" else 2
            got[rt.name] = rt("exec", *args[:i], ids[rt.name], *args[i:])
        c, ru = got["conch"], got["runc"]
        assert (c.returncode, c.stdout) == (ru.returncode, ru.stdout), (args, c.stderr, ru.stderr)
        if fragment is None:
            assert c.stderr == ru.stderr, args
        else:
            assert c.returncode == 255
            assert fragment in message(c.stderr) and fragment in message(ru.stderr), \
                (args, c.stderr, ru.stderr)


@pytest.mark.runc
def test_stray_fds_are_closed_as_runc_closes_them(conch, runc, make_bundle, cid):
    b = sleeper(make_bundle)
    got = {}
    with Pipes(3) as p:
        dirfd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        try:
            for rt in (runc, conch):
                c = cid()
                started(rt, b, c)
                fds = {3: p[0], 4: dirfd, 5: p[1], 7: p[2]}
                got[rt.name] = [run_with_fds(rt, fds, "exec", *flags, c, "sh", "-c", FDS)
                                for flags in ([], ["--preserve-fds", "2"])]
        finally:
            os.close(dirfd)
    for rc, ru in zip(got["conch"], got["runc"]):
        assert (rc.returncode, rc.stdout) == (ru.returncode, ru.stdout) != (0, ""), \
            (rc.stderr, ru.stderr)
    assert got["conch"][0].stdout == "0 1 2 3\n"


@pytest.mark.runc
def test_stopped_and_paused_errors_as_runc(conch, runc, make_bundle, cid):
    got = {}
    for rt in (runc, conch):
        c = cid()
        started(rt, sleeper(make_bundle), c)
        if rt is runc:
            assert rt("pause", c).returncode == 0
            paused = rt("exec", c, "true")
            assert rt("resume", c).returncode == 0
        else:
            (freezer,) = conch_state(conch, c)["freezer"]
            with open(freezer, "w") as f:
                f.write("FROZEN")
            try:
                paused = rt("exec", c, "true")
            finally:
                with open(freezer, "w") as f:
                    f.write("THAWED")
        assert rt("kill", c, "KILL").returncode == 0
        wait_for(lambda: rt.state(c)["status"] == "stopped", what="stopped")
        stopped = rt("exec", c, "true")
        got[rt.name] = [(r.returncode, message(r.stderr).strip()) for r in (paused, stopped)]
    assert got["conch"] == got["runc"]
    assert [code for code, _ in got["conch"]] == [255, 255]


# --- security -------------------------------------------------------------------------

# In the container: watch /proc for the exec helper (comm conch:exec, until it execs)
# and try what CVE-2019-5736 and CVE-2016-9962 need: /proc/PID/exe (the host
# interpreter) and /proc/PID/mem. Each success is reported with the comm read after
# it, so that a success on the exec'd program (after execve) is told apart.
SCANNER = r'''
echo ready
while :; do
  for d in /proc/[0-9]*; do
    c=; read -r c 2>/dev/null <"$d/comm"
    [ "$c" = conch:exec ] || continue
    echo "seen ${d#/proc/}"
    if l=$(readlink "$d/exe" 2>/dev/null); then
      c2=; read -r c2 2>/dev/null <"$d/comm"; echo "exe $c2 $l"
    fi
    if (exec 3<"$d/mem") 2>/dev/null; then
      c2=; read -r c2 2>/dev/null <"$d/comm"; echo "mem $c2"
    fi
    if (exec 3>>"$d/exe") 2>/dev/null; then
      c2=; read -r c2 2>/dev/null <"$d/comm"; echo "exe-write $c2"
    fi
  done
done
'''


def test_container_cannot_reach_the_helper_through_proc(conch, make_bundle, cid, bg, tmp_path):
    """The helper is in the container's pid namespace from its fork and, once it has
    dropped to the process's user and capabilities, nothing but dumpability keeps
    the container from its /proc/PID/exe and mem. A PATH of 40000 missing directories
    holds it in that state (looking up the executable) for ~0.1 s per exec; without
    PR_SET_DUMPABLE the scanner reads /proc/PID/exe -> /usr/bin/python3.x."""
    c = cid()
    started(conch, sleeper(make_bundle), c)
    pf = tmp_path / "scanner.pid"
    p = bg(conch, "exec", "-d", "--pid-file", pf, c, "sh", "-c", SCANNER)
    assert p.wait(10) == 0, p.err()
    scanner = int(pf.read_text())
    try:
        wait_for(lambda: "ready" in p.out(), what="the scanner")
        slow_path = "PATH=" + ":".join(["/a"] * 40000) + ":/bin"
        for _ in range(5):
            r = conch("exec", "-e", slow_path, c, "true")
            assert r.returncode == 0, r.stderr
            if "seen" in p.out():
                break
    finally:
        kill_and_wait(scanner)
    out = p.out()
    assert "seen" in out, "the scanner never saw the helper: the test proves nothing"
    assert "python" not in out
    assert not re.search(r"^(exe|mem|exe-write) conch:exec", out, re.M), out


_KCMP = r'''
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)
data = (ctypes.c_uint32 * 6)()
assert libc.capget(hdr, data) == 0
data[0] &= ~(1 << 19)  # CAP_SYS_PTRACE out of the effective set; permitted stays full
assert libc.capset(hdr, data) == 0
nr = {"x86_64": 312, "aarch64": 272}[os.uname().machine]
for pid in sys.argv[1:]:
    r = libc.syscall(nr, os.getpid(), int(pid), 1, 0, 0)  # kcmp(KCMP_VM)
    print(ctypes.get_errno() if r < 0 else 0)
'''


def ptrace_denied(*pids):
    """For each pid: would a same-uid process with all its capabilities but
    CAP_SYS_PTRACE be refused ptrace access (PTRACE_MODE_READ_REALCREDS)? Only
    non-dumpability refuses it."""
    r = subprocess.run(["/usr/bin/python3", "-c", _KCMP, *map(str, pids)], capture_output=True,
                       text=True, timeout=10, check=True)
    return [int(x) == 1 for x in r.stdout.split()]  # EPERM


def test_helper_is_not_dumpable_before_it_joins_the_container(conch, make_bundle, cid, bg):
    """Hold the helper where it joins the cgroups, before any setns: --cgroup puts it in
    a frozen freezer sub-cgroup of the container's. It is in the container's pid
    namespace already (forked into it) and must be non-dumpable there."""
    c = cid()
    init = started(conch, sleeper(make_bundle), c)
    hold = os.path.join(cgroup_dir(conch, c, "freezer"), "hold")
    os.mkdir(hold)
    p = None
    control = subprocess.Popen(["sleep", "60"])
    try:
        with open(os.path.join(hold, "freezer.state"), "w") as f:
            f.write("FROZEN")
        p = bg(conch, "exec", "-d", "--cgroup", "freezer:hold", c, "true")

        def frozen_helper():
            with open(os.path.join(hold, "cgroup.procs")) as f:
                pids = f.read().split()
            with open(os.path.join(hold, "freezer.state")) as f:
                return pids and f.read().strip() == "FROZEN" and int(pids[0])
        helper = wait_for(frozen_helper, what="the helper frozen in the sub-cgroup")
        with open(f"/proc/{helper}/comm") as f:
            assert f.read().strip() == "conch:exec"
        assert status_field(helper, "NSpid")[-1] != str(helper)  # in the container's pid ns
        assert os.readlink(f"/proc/{helper}/ns/mnt") != os.readlink(f"/proc/{init}/ns/mnt")
        # the control (a dumpable process of ours) shows the check can tell
        assert ptrace_denied(helper, control.pid) == [True, False]
    finally:
        control.kill()
        control.wait()
        with open(os.path.join(hold, "freezer.state"), "w") as f:
            f.write("THAWED")
        if p is not None:
            assert p.wait(10) == 0, p.err()
        wait_for(lambda: not open(os.path.join(hold, "cgroup.procs")).read(), what="hold empty")
        os.rmdir(hold)


def test_foreground_conch_is_invisible_in_the_container(conch, make_bundle, cid, bg):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    p = bg(conch, "exec", c, "sh", "-c", "echo ready; exec sleep 1000")
    wait_for(lambda: "ready" in p.out(), what="ready")
    r = conch("exec", c, "sh", "-c",
              'for d in /proc/[0-9]*; do echo "$(cat $d/comm) $(readlink $d/exe)"; done')
    assert r.returncode == 0, r.stderr
    procs = [line.split() for line in r.stdout.splitlines()]
    assert procs and all(len(x) == 2 and x[1] == "/bin/busybox" for x in procs), procs
    assert not [x for x in procs if "conch" in x[0] or "python" in x[0]]
    p.send_signal(signal.SIGTERM)
    assert p.wait(10) == 128 + 15


@pytest.fixture
def host_dir(tmp_path):
    """A host directory with a file the container must never see; an fd to it."""
    d = tmp_path / "host-only"
    d.mkdir()
    (d / "SECRET").write_text("host-secret\n")
    (d / "sub").mkdir()
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def test_stray_host_fds_do_not_reach_the_process(conch, make_bundle, cid, host_dir):
    c = cid()
    started(conch, sleeper(make_bundle), c)
    with Pipes(1) as p:
        r = run_with_fds(conch, {3: host_dir, 4: p[0], 7: host_dir, 10: p[0]},
                         "exec", c, "sh", "-c", FD_TABLE + "; cat /proc/self/fd/7/SECRET")
    assert set(fd_table(r.stdout)) == {0, 1, 2}, r.stdout
    assert "host-secret" not in r.stdout


@pytest.mark.parametrize("how", ["process.json", "--cwd"])
@pytest.mark.parametrize("cwd", ["/proc/self/fd/7", "/proc/self/fd/7/sub",
                                 "/proc/self/fd/7/sub/.."])
def test_stray_fd_as_cwd_stays_out_of_the_host(conch, make_bundle, cid, tmp_path, host_dir, how,
                                               cwd):
    """CVE-2024-21626: a host directory fd the caller left open (7, not asked to be
    preserved) must not become the process's working directory."""
    c = cid()
    started(conch, sleeper(make_bundle), c)
    args = ["sh", "-c", "pwd; ls; cat SECRET"]
    if how == "process.json":
        pj = tmp_path / "process.json"
        pj.write_text(json.dumps({"args": args, "cwd": cwd, "env": ["PATH=/bin"]}))
        r = run_with_fds(conch, {7: host_dir}, "exec", "-p", pj, c)
    else:
        r = run_with_fds(conch, {7: host_dir}, "exec", "--cwd", cwd, c, *args)
    assert "host-secret" not in r.stdout and "SECRET" not in r.stdout
    if r.returncode != 0:  # else it may only have run inside the container
        one_error_line(r)


@pytest.mark.parametrize("exe", ["/proc/self/fd/7/busybox", "/proc/self/fd/7/../bin/busybox"])
def test_stray_fd_as_the_executable_is_not_run(conch, make_bundle, cid, exe):
    """The same through args[0]: before, the helper kept the fd open until execve, so a
    host binary ran in the container, and the container could open its /proc/PID/exe
    (CVE-2019-5736's way to the host's files)."""
    busybox = shutil.which("busybox")
    if not busybox:
        pytest.skip("no host busybox")
    c = cid()
    init = started(conch, sleeper(make_bundle), c)
    fd = os.open(os.path.dirname(os.path.realpath(busybox)), os.O_RDONLY | os.O_DIRECTORY)
    try:
        r = run_with_fds(conch, {7: fd}, "exec", c, exe, "sh", "-c", "readlink /proc/self/exe")
    finally:
        os.close(fd)
    assert "no such file or directory" in one_error_line(r)
    assert r.stdout == "" and container_procs(conch, c) == [init]
