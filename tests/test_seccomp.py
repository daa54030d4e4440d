"""linux.seccomp as a container sees it: every action, errno values, argument
filters, ENOSYS for syscalls newer than the profile, the notify listener, the
flags, Docker's default profile, the point where the filter is loaded, and the
errors of a wrong profile.

Most checks run busybox. Those that need a syscall busybox never makes run the
host's python3 in the container (the host's /usr bound read-only: `probe`),
which calls the syscalls through ctypes and prints what each returned.
"""

import ctypes
import errno
import json
import os
import platform
import re
import select
import socket
import struct
import subprocess
import tempfile
import threading

import pytest

LOGRUS_MSG = re.compile(r'level=error msg="((?:[^"\\]|\\.)*)"')


def message(stderr):
    """The message of conch's one logrus error line."""
    assert stderr.count("\n") == 1, stderr
    m = LOGRUS_MSG.search(stderr)
    assert m, stderr
    return re.sub(r"\\(.)", r"\1", m.group(1))

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
X86_64 = platform.machine() == "x86_64"
needs_x86_64 = pytest.mark.skipif(not X86_64, reason="syscall numbers of x86_64")

# x86_64 syscall numbers the probes call
NR = {"getpid": 39, "unshare": 272, "personality": 135, "clone3": 435, "faccessat2": 439,
      "mkdir": 83, "getppid": 110, "socket": 41}
UNKNOWN_NR = 1000  # no kernel has it


def docker_profile():
    with open(os.path.join(DATA, "seccomp-default.json")) as f:
        return json.load(f)


def run(conch, bundle, cid, args, seccomp=None, check=True):
    bundle.process["args"] = list(args)
    if seccomp is None:
        bundle.linux.pop("seccomp", None)
    else:
        bundle.linux["seccomp"] = seccomp
    bundle.save()
    r = conch("run", "-b", bundle.path, cid())
    if check:
        assert r.returncode == 0, f"rc {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def sh(conch, bundle, cid, script, seccomp=None, check=True):
    return run(conch, bundle, cid, ["sh", "-c", script], seccomp, check)


def allow_all(*rules, **extra):
    return dict({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules)}, **extra)


def rule(names, action, **kw):
    return dict({"names": list(names), "action": action}, **kw)


# --- the python probe ---------------------------------------------------------------

PROBE = r"""
import ctypes, json, sys
libc = ctypes.CDLL(None, use_errno=True)
out = []
for nr, *args in json.loads(sys.argv[1]):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a) for a in args])
    out.append("ok" if r >= 0 else ctypes.get_errno())
print(json.dumps(out))
"""


@pytest.fixture
def pybundle(make_bundle):
    """A bundle whose rootfs has the host's /usr (read-only), so python3 runs in it."""
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("no /usr/bin/python3 on the host")
    b = make_bundle(["true"], copy_rootfs=True)
    root = b.config["root"]["path"]
    for name in ("lib", "lib64"):
        if os.path.isdir(f"/usr/{name}") and not os.path.lexists(os.path.join(root, name)):
            os.symlink(f"usr/{name}", os.path.join(root, name))
    b.config["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr",
                               "options": ["rbind", "ro", "nosuid", "nodev"]})
    b.save()
    return b


def probe(conch, bundle, cid, calls, seccomp):
    """Make the syscalls [(nr, args...)] in a container; return "ok" or the errno of each."""
    r = run(conch, bundle, cid, ["/usr/bin/python3", "-I", "-S", "-c", PROBE, json.dumps(calls)],
            seccomp)
    return json.loads(r.stdout.strip().splitlines()[-1])


# --- actions ----------------------------------------------------------------------------

def test_errno_with_errno_ret_and_the_default_eperm(conch, make_bundle, cid):
    b = make_bundle()
    prof = allow_all(rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet=errno.EACCES),
                     rule(["rmdir"], "SCMP_ACT_ERRNO"))
    b.config["root"]["readonly"] = False
    out = sh(conch, b, cid, "mkdir /tmp/x; echo mkdir=$?; rmdir /tmp; echo rmdir=$?", prof)
    assert "mkdir=1" in out.stdout and "rmdir=1" in out.stdout
    assert "Permission denied" in out.stderr  # EACCES, as errnoRet says
    assert "Operation not permitted" in out.stderr  # no errnoRet: EPERM
    # without the profile both act
    out = sh(conch, b, cid, "mkdir /tmp/x && echo made && rmdir /tmp/x && echo removed")
    assert out.stdout == "made\nremoved\n"


def test_default_errno_ret_with_an_allow_list(conch, make_bundle, cid):
    """A trace-free allow list: the default refuses with defaultErrnoRet, the listed
    syscalls (what busybox echo and the init's last steps need) run."""
    b = make_bundle()
    allowed = ["read", "write", "close", "exit", "exit_group", "brk", "mmap", "munmap",
               "mprotect", "arch_prctl", "set_tid_address", "set_robust_list", "rseq",
               "prlimit64", "readlink", "getrandom", "prctl", "getuid", "geteuid", "getgid",
               "getegid", "getpid", "getppid", "uname", "getcwd", "rt_sigaction",
               "rt_sigprocmask", "rt_sigreturn", "execve", "close_range", "sendto", "sendmsg",
               "recvfrom", "recvmsg", "accept4", "ioctl", "fcntl", "newfstatat", "fstat",
               "openat", "lseek", "getdents64", "stat", "lstat", "clone", "fork", "vfork",
               "wait4", "set_robust_list", "setpgid", "gettid"]
    prof = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EROFS,
            "syscalls": [rule(allowed, "SCMP_ACT_ALLOW")]}
    r = sh(conch, b, cid, "echo hello; mkdir /x; echo mkdir=$?", prof)
    assert r.stdout == "hello\nmkdir=1\n"
    assert "Read-only file system" in r.stderr


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"])
def test_kill_and_trap_stop_the_process(conch, make_bundle, cid, action):
    b = make_bundle()
    r = sh(conch, b, cid, "echo before; mkdir /tmp/k; echo rc=$?; exec mkdir /tmp/k",
           allow_all(rule(["mkdir", "mkdirat"], action)), check=False)
    # SIGSYS: killed, or trapped without a handler; the shell's child, then the shell
    assert r.stdout == f"before\nrc={128 + 31}\n"
    assert r.returncode == 128 + 31


def test_log_allows_and_trace_without_a_tracer_is_enosys(conch, make_bundle, cid):
    b = make_bundle()
    b.config["root"]["readonly"] = False
    prof = allow_all(rule(["mkdir", "mkdirat"], "SCMP_ACT_LOG"),
                     rule(["rmdir"], "SCMP_ACT_TRACE", errnoRet=7))
    r = sh(conch, b, cid, "mkdir /tmp/l && echo made; rmdir /tmp/l; echo rmdir=$?", prof)
    assert r.stdout == "made\nrmdir=1\n"
    assert "Function not implemented" in r.stderr  # no tracer: the kernel says ENOSYS


def test_unknown_syscall_names_are_skipped(conch, make_bundle, cid):
    b = make_bundle()
    prof = allow_all(rule(["no_such_syscall_conch", "mkdir", "mkdirat", "another_made_up"],
                          "SCMP_ACT_ERRNO"))
    r = sh(conch, b, cid, "mkdir /tmp/u; echo mkdir=$?", prof)
    assert r.stdout == "mkdir=1\n" and "Operation not permitted" in r.stderr


# --- arguments ------------------------------------------------------------------------------

@needs_x86_64
def test_only_the_personality_query_is_allowed(conch, pybundle, cid):
    """personality(0xffffffff) asks; any other value would change the personality."""
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        rule(["personality"], "SCMP_ACT_ERRNO",
             args=[{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_NE"}])]}
    p = NR["personality"]
    got = probe(conch, pybundle, cid, [[p, 0xFFFFFFFF], [p, 8], [p, 0], [p, 0x1FFFFFFFF]], prof)
    assert got == ["ok", errno.EPERM, errno.EPERM, errno.EPERM]
    # busybox's linux32 sets PER_LINUX32 and fails the same way
    r = run(conch, pybundle, cid, ["linux32", "true"], prof, check=False)
    assert r.returncode != 0 and "Operation not permitted" in r.stderr


@needs_x86_64
def test_every_operator_and_and_or_of_conditions(conch, pybundle, cid):
    """Conditions on different arguments must all hold (AND); several on one argument
    make one rule each (OR), as runc builds them."""
    s = NR["socket"]
    g = NR["getppid"]

    def cond(index, op, value, two=None):
        c = {"index": index, "value": value, "op": f"SCMP_CMP_{op}"}
        if two is not None:
            c["valueTwo"] = two
        return c

    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        # AND: refused only for AF_UNIX (1) with SOCK_DGRAM (2)
        rule(["socket"], "SCMP_ACT_ERRNO", errnoRet=errno.EACCES,
             args=[cond(0, "EQ", 1), cond(1, "EQ", 2)]),
        # OR on argument 0 of getppid (unused by the kernel, so any value runs)
        rule(["getppid"], "SCMP_ACT_ERRNO", errnoRet=errno.E2BIG,
             args=[cond(0, "LT", 10), cond(0, "GT", 100)]),
        rule(["getpid"], "SCMP_ACT_ERRNO", errnoRet=errno.EBADE, args=[cond(0, "LE", 5)]),
        rule(["getpid"], "SCMP_ACT_ERRNO", errnoRet=errno.EBADR, args=[cond(0, "GE", 1000)]),
        rule(["gettid"], "SCMP_ACT_ERRNO", errnoRet=errno.EBADF, args=[cond(0, "NE", 7)]),
        rule(["getuid"], "SCMP_ACT_ERRNO", errnoRet=errno.EBFONT,
             args=[cond(0, "MASKED_EQ", 0xF0, 0x30)]),
    ]}
    calls = [[s, 1, 2, 0], [s, 1, 1, 0], [s, 2, 2, 0],
             [g, 5], [g, 50], [g, 500],
             [NR["getpid"], 5], [NR["getpid"], 6], [NR["getpid"], 1000],
             [186, 7], [186, 8],  # gettid
             [102, 0x3F], [102, 0x4F]]  # getuid
    got = probe(conch, pybundle, cid, calls, prof)
    assert got == [errno.EACCES, "ok", "ok",
                   errno.E2BIG, "ok", errno.E2BIG,
                   errno.EBADE, "ok", errno.EBADR,
                   "ok", errno.EBADF,
                   errno.EBFONT, "ok"]


# --- ENOSYS ----------------------------------------------------------------------------------

def _x86_64_number(name):
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    return lib.seccomp_syscall_resolve_name_arch(0xC000003E, name.encode())


@needs_x86_64
def test_syscalls_newer_than_the_profile_get_enosys(conch, runc, pybundle, cid):
    """Docker's allow list cut below clone3 (435): faccessat2 (439), which the
    kernel has, and 1000, which no kernel has, are newer than the profile: ENOSYS
    (libc falls back), not EPERM. Older syscalls the profile leaves out stay EPERM.
    A runtime that loads libseccomp's filter as it is returns EPERM for all three."""
    prof = docker_profile()
    prof["syscalls"][0]["names"] = [n for n in prof["syscalls"][0]["names"]
                                    if _x86_64_number(n) < NR["clone3"]]
    prof["syscalls"] = [r for r in prof["syscalls"] if r["names"] != ["clone3"]]
    calls = [[NR["faccessat2"], (1 << 64) - 100, 0, 0, 0], [UNKNOWN_NR],
             [NR["unshare"], 0x10000000], [NR["getpid"]]]
    got = probe(conch, pybundle, cid, calls, prof)
    assert got == [errno.ENOSYS, errno.ENOSYS, errno.EPERM, "ok"]
    # runc 1.1 does the same
    pybundle.save()
    c = cid()
    r = runc("run", "-b", pybundle.path, c)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == got


@needs_x86_64
def test_no_enosys_stub_when_the_default_allows(conch, pybundle, cid):
    prof = allow_all(rule(["getppid"], "SCMP_ACT_ERRNO"))
    got = probe(conch, pybundle, cid, [[NR["faccessat2"], (1 << 64) - 100, 0, 0, 0],
                                       [NR["getppid"]]], prof)
    assert got == [errno.EFAULT, errno.EPERM]  # faccessat2 ran: its NULL path is EFAULT


# --- notify -----------------------------------------------------------------------------------

NOTIF_RECV = 0xC0502100  # SECCOMP_IOCTL_NOTIF_RECV, struct seccomp_notif (80 bytes)
NOTIF_SEND = 0xC0182101  # SECCOMP_IOCTL_NOTIF_SEND, struct seccomp_notif_resp (24 bytes)
FLAG_CONTINUE = 1


class Listener:
    """A seccomp agent at `path`: takes each container process state with its fd,
    and answers the notifications: {syscall nr: value} fakes a success returning
    value, anything else continues into the kernel."""

    def __init__(self, path, answers):
        self.answers = answers
        self.states = []
        self.notified = []
        self.errors = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            with conn:
                msg, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(16))
            fds = [int.from_bytes(d[i:i + 4], "little") for lvl, typ, d in anc
                   if lvl == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS
                   for i in range(0, len(d) - 3, 4)]
            self.states.append((json.loads(msg), len(fds)))
            for fd in fds:
                t = threading.Thread(target=self._serve, args=(fd,), daemon=True)
                self.threads.append(t)
                t.start()

    def _serve(self, fd):
        import fcntl
        try:
            p = select.poll()
            p.register(fd, select.POLLIN)
            while not self.stop.is_set():
                ev = p.poll(200)
                if not ev:
                    continue
                if ev[0][1] & select.POLLHUP:
                    return  # every process under the filter is gone
                buf = bytearray(80)
                try:
                    fcntl.ioctl(fd, NOTIF_RECV, buf, True)
                except OSError as e:
                    if e.errno == errno.ENOENT:
                        continue  # the process went away meanwhile
                    raise
                nid, pid, _flags, nr = struct.unpack_from("<QIIi", buf)
                self.notified.append((nr, pid))
                if nr in self.answers:
                    resp = struct.pack("<QqiI", nid, self.answers[nr], 0, 0)
                else:
                    resp = struct.pack("<QqiI", nid, 0, 0, FLAG_CONTINUE)
                try:
                    fcntl.ioctl(fd, NOTIF_SEND, bytearray(resp), True)
                except OSError as e:
                    if e.errno != errno.ENOENT:
                        raise
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))
        finally:
            os.close(fd)

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(5)
        self.sock.close()


@pytest.fixture
def listener(tmp_path):
    made = []

    def make(answers):
        lst = Listener(str(tmp_path / f"agent{len(made)}.sock"), answers)
        made.append(lst)
        return lst
    yield make
    for lst in made:
        lst.close()


def notify_profile(path, names, metadata="conch-test"):
    return allow_all(rule(names, "SCMP_ACT_NOTIFY"), listenerPath=path,
                     listenerMetadata=metadata)


@needs_x86_64
def test_notify_listener_gets_the_fd_and_answers_syscalls(conch, make_bundle, cid, listener):
    lst = listener({NR["getppid"]: 4242, NR["mkdir"]: 0, 258: 0})  # 258: mkdirat
    b = make_bundle()
    path = lst.sock.getsockname()
    c = cid()
    b.process["args"] = ["sh", "-c", "echo ppid=$PPID; mkdir /faked && echo made; "
                         "test -d /faked && echo exists || echo absent"]
    b.linux["seccomp"] = notify_profile(path, ["getppid", "mkdir", "mkdirat"], "meta=1")
    b.save()
    r = conch("run", "-b", b.path, c)
    assert r.returncode == 0, r.stderr
    # getppid answered 4242; mkdir "succeeded" on the read-only root without making anything
    assert r.stdout == "ppid=4242\nmade\nabsent\n"
    assert not lst.errors
    assert len(lst.states) == 1
    state, nfds = lst.states[0]
    assert nfds == 1
    assert state["fds"] == ["seccompFd"]
    assert state["metadata"] == "meta=1"
    assert state["ociVersion"].startswith("1.")
    st = state["state"]
    assert st["id"] == c and st["status"] == "creating" and st["bundle"] == b.path
    assert state["pid"] == st["pid"] > 0
    assert {nr for nr, _ in lst.notified} >= {NR["getppid"]}


@needs_x86_64
def test_notify_for_an_exec_process(conch, make_bundle, cid, listener, tmp_path):
    lst = listener({NR["getppid"]: 777})
    b = make_bundle(["sleep", "30"])
    b.linux["seccomp"] = notify_profile(lst.sock.getsockname(), ["getppid"])
    b.save()
    c = cid()
    with open(tmp_path / "o", "wb") as o:
        p = conch.popen("run", "-d", "-b", b.path, c, stdout=o, stderr=o,
                        stdin=subprocess.DEVNULL)
        assert p.wait(30) == 0
    r = conch("exec", c, "sh", "-c", "echo $PPID")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "777\n"
    init_state, exec_state = lst.states[0][0], lst.states[1][0]
    assert init_state["state"]["status"] == "creating"
    assert exec_state["state"]["status"] == "running"
    assert exec_state["pid"] != exec_state["state"]["pid"] == init_state["pid"]
    conch("delete", "--force", c)


@pytest.mark.parametrize("prof, field", [
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/x.sock"},
     "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"),
    (allow_all(rule(["getpid", "write"], "SCMP_ACT_NOTIFY"), listenerPath="/run/x.sock"),
     'linux.seccomp.syscalls[0].names: SCMP_ACT_NOTIFY cannot be used for "write"'),
    (allow_all(rule(["getpid"], "SCMP_ACT_NOTIFY")),
     "linux.seccomp.listenerPath: required by SCMP_ACT_NOTIFY"),
])
def test_notify_refused_where_it_would_hang(conch, make_bundle, cid, prof, field):
    b = make_bundle()
    b.linux["seccomp"] = prof
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 1 and field in message(r.stderr)
    assert conch("list", "-q").stdout == ""


def test_notify_with_no_listener_fails_create_cleanly(conch, make_bundle, cid, tmp_path):
    b = make_bundle()
    b.linux["seccomp"] = notify_profile(str(tmp_path / "nobody.sock"), ["getppid"])
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 1
    assert "linux.seccomp.listenerPath: sending the seccomp fd to" in r.stderr, r.stderr
    assert conch("list", "-q").stdout == ""


# --- flags, the default profile, the load point ---------------------------------------------

FLAG_NAMES = ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
              "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]


@pytest.mark.parametrize("flags", [[f] for f in FLAG_NAMES] + [FLAG_NAMES])
def test_flags_are_accepted_and_the_filter_is_on(conch, make_bundle, cid, flags, listener):
    b = make_bundle()
    prof = allow_all(rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO"), flags=flags)
    if "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" in flags:
        # the flag goes with a listener (the kernel refuses it alone)
        prof["syscalls"].append(rule(["getppid"], "SCMP_ACT_NOTIFY"))
        prof["listenerPath"] = listener({}).sock.getsockname()
    r = sh(conch, b, cid, "grep Seccomp: /proc/self/status; mkdir /tmp/f; echo mkdir=$?", prof)
    assert r.stdout.split() == ["Seccomp:", "2", "mkdir=1"]


def test_docker_default_profile(conch, make_bundle, cid):
    """A busybox shell works as usual; what the profile leaves out fails even where
    the capabilities would allow it (CAP_SYS_ADMIN for mount, none for a user namespace)."""
    b = make_bundle()
    for s in ("bounding", "effective", "permitted"):
        b.process["capabilities"][s] = b.process["capabilities"][s] + ["CAP_SYS_ADMIN"]
    script = ("echo hi | tr a-z A-Z; ls / | wc -l; ps | grep -c sh; "
              "date +%Y >/dev/null && echo date; "
              "cat /proc/self/status | grep '^Seccomp:'; "
              "unshare -U true && echo unshare-ok; mount -t tmpfs none /tmp && echo mount-ok; "
              "exit 0")
    plain = sh(conch, b, cid, script)
    assert "unshare-ok" in plain.stdout and "mount-ok" in plain.stdout
    r = sh(conch, b, cid, script, docker_profile())
    lines = r.stdout.splitlines()
    assert lines[0] == "HI" and lines[1] == plain.stdout.splitlines()[1]
    assert "date" in lines and "Seccomp:\t2" in lines
    assert "unshare-ok" not in r.stdout and "mount-ok" not in r.stdout
    assert "unshare(0x10000000): Operation not permitted" in r.stderr
    assert "mount: permission denied" in r.stderr or "Operation not permitted" in r.stderr


@needs_x86_64
def test_docker_default_profile_clone3_enosys_and_clone_flags(conch, pybundle, cid):
    code = ("import os, ctypes, errno;"
            "libc = ctypes.CDLL(None, use_errno=True);"
            "r = libc.syscall(435, None, 0); print('clone3', ctypes.get_errno());"
            "r = libc.syscall(56, ctypes.c_ulong(0x10000000 | 17), None, None, None, None);"
            "print('clone-newuser', ctypes.get_errno() if r < 0 else 'ok');"
            "pid = os.fork();"
            "os._exit(0) if pid == 0 else print('fork', os.waitpid(pid, 0)[1])")
    r = run(conch, pybundle, cid, ["/usr/bin/python3", "-I", "-S", "-c", code], docker_profile())
    assert r.stdout.split("\n")[:3] == [f"clone3 {errno.ENOSYS}", f"clone-newuser {errno.EPERM}",
                                        "fork 0"]


@pytest.mark.parametrize("nnp", [True, False])
def test_filter_is_loaded_where_runc_loads_it(conch, runc, make_bundle, cid, nnp):
    """With noNewPrivileges the filter comes after the user and capabilities are
    set, so a profile that refuses setresuid still starts; without, it comes before
    (it needs CAP_SYS_ADMIN then) and the runtime's own setresuid is refused."""
    b = make_bundle(["sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"])
    b.process["noNewPrivileges"] = nnp
    b.process["user"] = {"uid": 1000, "gid": 1000}
    # conch switches with setresuid, runc (Go) with setuid
    b.linux["seccomp"] = allow_all(rule(["setresuid", "setuid"], "SCMP_ACT_ERRNO"))
    b.save()
    r = conch("run", "-b", b.path, cid())
    rr = runc("run", "-b", b.path, cid())
    assert (r.returncode == 0) == (rr.returncode == 0) == nnp, (r.stderr, rr.stderr)
    if nnp:
        assert r.stdout.split() == ["NoNewPrivs:", "1", "Seccomp:", "2"]
    else:
        assert "Operation not permitted" in r.stderr
    # a harmless profile loads without no_new_privs for a user without capabilities too
    b.linux["seccomp"] = allow_all(rule(["mkdir"], "SCMP_ACT_ERRNO"))
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["NoNewPrivs:", "1" if nnp else "0", "Seccomp:", "2"]


def test_exec_gets_the_container_filter(conch, make_bundle, cid, tmp_path):
    b = make_bundle(["sleep", "30"])
    b.linux["seccomp"] = allow_all(rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO",
                                        errnoRet=errno.EXDEV))
    b.save()
    c = cid()
    with open(tmp_path / "o", "wb") as o:
        assert conch.popen("run", "-d", "-b", b.path, c, stdout=o, stderr=o,
                           stdin=subprocess.DEVNULL).wait(30) == 0
    r = conch("exec", c, "sh", "-c", "grep Seccomp: /proc/self/status; mkdir /tmp/e")
    assert r.stdout.split() == ["Seccomp:", "2"]
    assert "Invalid cross-device link" in r.stderr  # EXDEV, the profile's errnoRet
    conch("delete", "--force", c)


# --- cost -------------------------------------------------------------------------------------

def _maps_of_created_init(conch, bundle, cid):
    c = cid()
    with tempfile.TemporaryFile() as o:
        assert conch.popen("create", "-b", bundle.path, c, stdout=o, stderr=o,
                           stdin=subprocess.DEVNULL).wait(30) == 0
    pid = conch.state(c)["pid"]
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read()
    conch("delete", "--force", c)
    return maps


def test_without_seccomp_nothing_of_it_is_loaded(conch, make_bundle, cid):
    """No import of conch.seccomp, no libseccomp in the init, for a config without
    linux.seccomp; both for one with it (loaded in conch, before the fork)."""
    b = make_bundle(["true"])
    assert "libseccomp" not in _maps_of_created_init(conch, b, cid)
    r = subprocess.run(["/usr/bin/python3", "-IS", "-X", "importtime", conch.argv0[0],
                        "--root", conch.root, "run", "-b", b.path, cid()],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "conch.init" in r.stderr
    assert "conch.seccomp" not in r.stderr and "conch.lsm" not in r.stderr
    b.linux["seccomp"] = allow_all(rule(["mkdir"], "SCMP_ACT_ERRNO"))
    b.save()
    assert "libseccomp.so" in _maps_of_created_init(conch, b, cid)


def test_compiled_filters_are_cached_and_a_bad_cache_file_is_ignored(conch, make_bundle, cid):
    b = make_bundle()
    prof = docker_profile()
    for _ in range(2):
        r = sh(conch, b, cid, "grep Seccomp: /proc/self/status", prof)
        assert r.stdout.split() == ["Seccomp:", "2"]
    cache = os.path.join(conch.root, ".seccomp")
    names = os.listdir(cache)
    assert len(names) == 1 and os.stat(cache).st_mode & 0o777 == 0o700
    path = os.path.join(cache, names[0])
    with open(path, "r+b") as f:
        f.truncate(13)  # not a whole program: compiled again
    r = sh(conch, b, cid, "unshare -U true; echo $?", prof)
    assert r.stdout == "1\n"
    assert os.path.getsize(path) % 8 == 0 and os.path.getsize(path) > 13


# --- a wrong profile: one line that names the field -------------------------------------------

def _arg(**kw):
    return allow_all(rule(["getpid"], "SCMP_ACT_ERRNO", args=[dict({"index": 0, "value": 1,
                                                                  "op": "SCMP_CMP_EQ"}, **kw)]))


BAD = [
    ({"defaultAction": "SCMP_ACT_BOGUS"},
     'linux.seccomp.defaultAction: unknown action "SCMP_ACT_BOGUS"'),
    ({}, "linux.seccomp.defaultAction: missing"),
    ("allow", 'linux.seccomp: expected object, got "allow"'),
    (allow_all(architectures=["SCMP_ARCH_Z80"]),
     'linux.seccomp.architectures[0]: unknown architecture "SCMP_ARCH_Z80"'),
    (allow_all(flags=["SECCOMP_FILTER_FLAG_FAST"]),
     'linux.seccomp.flags[0]: unknown flag "SECCOMP_FILTER_FLAG_FAST"'),
    (_arg(index=6), "linux.seccomp.syscalls[0].args[0].index: 6 is out of range (0 to 5)"),
    (_arg(op="SCMP_CMP_ABOUT"),
     'linux.seccomp.syscalls[0].args[0].op: unknown operator "SCMP_CMP_ABOUT"'),
    (_arg(value=-1), "linux.seccomp.syscalls[0].args[0].value: -1 is out of range"),
    (allow_all(rule([], "SCMP_ACT_ERRNO")),
     "linux.seccomp.syscalls[0].names: must name at least one syscall"),
    (allow_all(rule(["getpid"], "SCMP_ACT_ERRNO", errnoRet="EPERM")),
     'linux.seccomp.syscalls[0].errnoRet: expected integer, got "EPERM"'),
    (allow_all({"names": ["getpid"]}), "linux.seccomp.syscalls[0].action: missing"),
    (allow_all(rule([3], "SCMP_ACT_ERRNO")),
     "linux.seccomp.syscalls[0].names[0]: expected string, got 3"),
]


@pytest.mark.parametrize("prof, msg", BAD,
                         ids=[f"{i}-{m.split(':')[0]}" for i, (_, m) in enumerate(BAD)])
def test_wrong_profile_is_one_line_naming_the_field(conch, make_bundle, cid, prof, msg):
    b = make_bundle()
    b.linux["seccomp"] = prof
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 1
    assert msg in message(r.stderr)
    assert conch("list", "-q").stdout == ""


def test_features_list_seccomp(conch):
    f = json.loads(conch("features", check=True).stdout)["linux"]["seccomp"]
    assert f["enabled"] is True
    assert "SCMP_ACT_NOTIFY" in f["actions"] and "SCMP_CMP_MASKED_EQ" in f["operators"]
    assert "SCMP_ARCH_X86_64" in f["archs"]
    assert set(f["knownFlags"]) == set(FLAG_NAMES)
