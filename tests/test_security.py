"""One black-box regression test per runtime advisory class
(../shared/docs/security-cases.md), plus capabilities and LSM labels.

Each test builds the hostile input (rootfs content, config, a racing process,
a stray fd) and then checks what a user would: the command fails with a clear
message or the container sees only its own files, and the host is unchanged
(files, owners, mounts). Each says how a naive runtime fails it. docs/SECURITY.md
maps every defence to its code and its test here; tests/test_exec.py covers the
exec helper's side of the same classes.
"""

import ctypes
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import REPO

LOGRUS_MSG = re.compile(r'level=error msg="((?:[^"\\]|\\.)*)"')


# --- helpers ---------------------------------------------------------------------------

def message(r):
    """The one error line of a failed conch command, unquoted."""
    assert r.returncode != 0, f"expected a failure, got rc 0: {r.stdout}"
    assert r.stderr.count("\n") == 1, r.stderr
    m = LOGRUS_MSG.search(r.stderr)
    assert m, r.stderr
    return re.sub(r"\\(.)", r"\1", m.group(1))


def ok(r):
    assert r.returncode == 0, f"rc {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r.stdout


def snapshot(path):
    """Everything under path: type, owner, mode, size and content hash of each entry."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            h = None
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, h)
    st = os.lstat(path)
    out["."] = (st.st_mode, st.st_uid, st.st_gid)
    return out


def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


def no_dev_mount(bundle):
    """Drop the /dev tmpfs (and what is mounted under it): /dev is the rootfs's own."""
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if not m["destination"].startswith("/dev")]
    return bundle


def status_caps(text):
    f = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k: int(f[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def last_cap():
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def cap_bits(names):
    from conch.config import CAP_NUMBERS
    m = 0
    for n in names:
        m |= 1 << CAP_NUMBERS[n]
    return m


def detached_run(conch, tmp_path, *args, **kw):
    """`conch run -d`/`create` with stdio on files (the container keeps them)."""
    name = tmp_path / f"io-{time.monotonic_ns()}"
    with open(f"{name}.out", "wb") as fo, open(f"{name}.err", "wb") as fe:
        p = conch.popen(*args, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, **kw)
        rc = p.wait(30)
    return subprocess.CompletedProcess(p.args, rc, open(f"{name}.out").read(),
                                       open(f"{name}.err").read())


@pytest.fixture
def pybundle(make_bundle):
    """A rootfs with the host's /usr bound read-only, its loader and libraries: a
    glibc image, in which the host's python3 can run."""
    b = make_bundle(["true"], copy_rootfs=True)
    root = b.config["root"]["path"]
    for name in ("lib", "lib64"):
        if os.path.isdir(f"/usr/{name}") and not os.path.lexists(os.path.join(root, name)):
            os.symlink(f"usr/{name}", os.path.join(root, name))
    b.config["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr",
                               "options": ["rbind", "ro", "nosuid", "nodev"]})
    return b.save()


FIND_INIT = ('for d in /proc/[0-9]*; do '
             '[ "$(cat $d/comm 2>/dev/null)" = conch:init ] || continue; ')


def shared_pidns_pair(conch, make_bundle, cid, tmp_path):
    """Container A runs; container B is created (its init, conch, waits for start)
    in A's pid namespace, so A's processes see B's init in their /proc."""
    a = make_bundle(["sleep", "60"], name="a")
    ca = cid()
    ok(detached_run(conch, tmp_path, "run", "-d", "-b", a.path, ca))
    apid = conch.state(ca)["pid"]
    b = make_bundle(["true"], name="b")
    b.linux["namespaces"] = [ns if ns["type"] != "pid" else
                             {"type": "pid", "path": f"/proc/{apid}/ns/pid"}
                             for ns in b.linux["namespaces"]]
    b.save()
    cb = cid()
    ok(detached_run(conch, tmp_path, "create", "-b", b.path, cb))
    return ca, cb, conch.state(cb)["pid"]


# --- CVE-2019-5736: the host interpreter through /proc/PID/exe -------------------------------

def test_cve_2019_5736_container_cannot_open_the_init_exe(conch, make_bundle, cid, tmp_path):
    """A container sharing its pid namespace with a created container sees that
    container's init, which is conch: a fork of the host's python3. A naive
    (dumpable) init lets it readlink and open /proc/PID/exe: the host interpreter,
    which it can keep and rewrite once python is not running."""
    ca, cb, bpid = shared_pidns_pair(conch, make_bundle, cid, tmp_path)
    script = (FIND_INIT + 'echo "init $d"; readlink $d/exe && echo readlink-ok; '
              'head -c 4 $d/exe >/dev/null && echo open-ok; '
              '(exec 3<$d/exe) && echo fd-ok; done 2>&1')
    out = ok(conch("exec", ca, "sh", "-c", script))
    assert "init /proc/" in out, "B's init is not visible in A: the test proves nothing"
    assert "python" not in out and "-ok" not in out, out
    assert out.count("Permission denied") == 2  # head, and the shell (readlink is silent)
    conch("delete", "--force", cb)
    conch("delete", "--force", ca)


EVIL = """#!/proc/self/exe
import os
fd = os.open("/proc/self/exe", os.O_PATH)
st = os.fstat(fd)
try:
    os.close(os.open(f"/proc/self/fd/{fd}", os.O_WRONLY))
    print("exe-write", 0)
except OSError as e:
    print("exe-write", e.errno)
print("exe-ino", st.st_dev, st.st_ino)
"""


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the sealed trampoline is x86_64")
@pytest.mark.parametrize("how", ["run", "exec"])
def test_cve_2019_5736_script_cannot_run_the_host_interpreter(conch, pybundle, cid, tmp_path, how):
    """The original attack: the container's entrypoint (or what `exec` runs) is a
    script whose interpreter is /proc/self/exe. The kernel resolves it in the process
    that execs, and that is conch: the host's python3 then runs in the container,
    and its /proc/PID/exe is the host file on the host's writable mount (ETXTBSY
    only while some python runs). Here the image is glibc-based (it has a loader),
    as most are. A naive runtime prints exe-write 26 (ETXTBSY) and the host inode."""
    root = pybundle.config["root"]["path"]
    with open(os.path.join(root, "evil"), "w") as f:
        f.write(EVIL)
    os.chmod(os.path.join(root, "evil"), 0o755)
    host = os.stat(os.path.realpath("/proc/self/exe"))
    if how == "run":
        pybundle.process["args"] = ["/evil"]
        pybundle.save()
        r = conch("run", "-b", pybundle.path, cid())
    else:
        pybundle.process["args"] = ["sleep", "60"]
        pybundle.save()
        c = cid()
        ok(detached_run(conch, tmp_path, "run", "-d", "-b", pybundle.path, c))
        r = conch("exec", c, "/evil")
        conch("delete", "--force", c)
    assert f"exe-ino {host.st_dev} {host.st_ino}" not in r.stdout, r.stdout
    assert "exe-write" not in r.stdout, r.stdout
    assert r.returncode != 0


# --- CVE-2016-9962: the init's fds and memory through /proc -----------------------------------

def test_cve_2016_9962_init_fds_and_memory_are_out_of_reach(conch, make_bundle, cid, tmp_path):
    """The same shared pid namespace: the init's fds (its sync socket, start.sock's
    listening socket) and memory must be out of reach. A naive dumpable init lets
    ls /proc/PID/fd, /proc/PID/environ and /proc/PID/mem through (same uid, no
    CAP_SYS_PTRACE needed)."""
    ca, cb, bpid = shared_pidns_pair(conch, make_bundle, cid, tmp_path)
    script = (FIND_INIT + 'echo "init $d"; '
              'for f in $d/fd/*; do readlink $f && echo fd-ok; cat $f </dev/null && echo fd-ok; '
              'done; '
              'cat $d/environ >/dev/null && echo env-ok; '
              'head -c 1 $d/mem >/dev/null && echo mem-ok; ls $d/root/ >/dev/null && echo root-ok; '
              'done 2>&1')
    out = ok(conch("exec", ca, "sh", "-c", script))
    assert "init /proc/" in out, "B's init is not visible in A: the test proves nothing"
    assert "-ok" not in out and "socket:" not in out, out
    conch("delete", "--force", cb)
    conch("delete", "--force", ca)


# --- CVE-2016-3697: numeric --user is a number ------------------------------------------------

def test_cve_2016_3697_numeric_user_is_never_a_name(conch, make_bundle, cid, tmp_path):
    """The image's /etc/passwd has a user *named* 1234 with uid 0. A naive runtime
    that looks `--user 1234` up as a name first runs the process as root."""
    b = make_bundle(["sleep", "60"], copy_rootfs=True)
    with open(os.path.join(b.config["root"]["path"], "etc/passwd"), "a") as f:
        f.write("1234:x:0:0:root in disguise:/root:/bin/sh\n")
    c = cid()
    ok(detached_run(conch, tmp_path, "run", "-d", "-b", b.path, c))
    assert ok(conch("exec", "--user", "1234", c, "id", "-u")) == "1234\n"
    assert ok(conch("exec", "--user", "1234:1234", c, "id", "-g")) == "1234\n"
    r = conch("exec", "--user", "root", c, "id", "-u")
    assert "--user" in message(r) and r.stdout == ""
    conch("delete", "--force", c)


# --- CVE-2019-16884 / CVE-2019-19921 / CVE-2023-27561 / CVE-2023-28642: fake /proc ------------

def test_cve_2019_16884_symlinked_proc_is_refused(conch, make_bundle, cid, tmp_path):
    """rootfs/proc is a symlink to a host path. A naive runtime follows it (procfs
    mounted over the host directory, or the container's /proc left a plain
    directory), then writes labels and sysctls where the symlink points."""
    host = tmp_path / "host-proc"
    host.mkdir()
    (host / "keep").write_text("host file\n")
    before = snapshot(host)
    b = make_bundle(["true"], copy_rootfs=True)
    root = b.config["root"]["path"]
    os.rmdir(os.path.join(root, "proc"))
    os.symlink(str(host), os.path.join(root, "proc"))
    b.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    b.save()
    msg = message(conch("run", "-b", b.path, cid()))
    assert '"/proc"' in msg and ("symbolic link" in msg or "not a directory" in msg), msg
    assert snapshot(host) == before and mounts_under(host) == []
    assert conch("list", "-q").stdout == ""


@pytest.mark.parametrize("fake", ["tmpfs", "relative-symlink"])
def test_cve_2019_16884_sysctls_are_not_written_to_a_fake_proc(conch, make_bundle, cid, fake):
    """A tmpfs mounted at /proc, or /proc a relative symlink to a directory of the
    image with a fake sys/ tree: a naive runtime writes the sysctl into that file
    (the image's file on the host disk changes) and reports success."""
    b = make_bundle(["true"], copy_rootfs=True)
    root = b.config["root"]["path"]
    fakefile = os.path.join(root, "fake/sys/net/ipv4/ip_forward")
    os.makedirs(os.path.dirname(fakefile))
    with open(fakefile, "w") as f:
        f.write("0\n")
    b.config["mounts"] = [m for m in b.config["mounts"] if m["destination"] != "/proc"]
    if fake == "tmpfs":
        b.config["mounts"].insert(0, {"destination": "/proc", "type": "tmpfs", "source": "tmpfs"})
        b.config["mounts"].append({"destination": "/proc/sys", "type": "bind",
                                   "source": os.path.join(root, "fake/sys"), "options": ["rbind"]})
    else:
        os.rmdir(os.path.join(root, "proc"))
        os.symlink("fake", os.path.join(root, "proc"))
    b.linux["maskedPaths"] = []
    b.linux["readonlyPaths"] = []
    b.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    b.save()
    msg = message(conch("run", "-b", b.path, cid()))
    assert "procfs" in msg or "sysctl" in msg, msg
    with open(fakefile) as f:
        assert f.read() == "0\n"


def test_fake_cap_last_cap_keeps_no_capability(conch, make_bundle, cid):
    """The image's /proc (no proc mounted there; the real one at /realproc) has
    sys/kernel/cap_last_cap = 2. A runtime that reads the highest capability from
    that file after pivot_root drops only caps 0-2 from the bounding set: the
    container keeps CAP_SYS_ADMIN and the rest in it."""
    b = make_bundle(["cat", "/realproc/self/status"], copy_rootfs=True)
    root = b.config["root"]["path"]
    os.makedirs(os.path.join(root, "proc/sys/kernel"))
    with open(os.path.join(root, "proc/sys/kernel/cap_last_cap"), "w") as f:
        f.write("2\n")
    for m in b.config["mounts"]:
        if m["destination"] == "/proc":
            m["destination"] = "/realproc"
    b.linux["maskedPaths"] = []
    b.linux["readonlyPaths"] = []
    b.config["root"]["readonly"] = False
    b.save()
    caps = status_caps(ok(conch("run", "-b", b.path, cid())))
    want = cap_bits(b.process["capabilities"]["bounding"])
    assert caps["CapBnd"] == want, hex(caps["CapBnd"])


# --- CVE-2021-30465 / crun CVE-2019-18837: rename-exchange race on a mount target -------------

RENAMEAT2 = {"x86_64": 316, "aarch64": 276}
RACER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
nr, a, b, stop = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode(), sys.argv[4]
n = 0
while not os.path.exists(stop):
    for _ in range(200):
        # renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
        if libc.syscall(ctypes.c_long(nr), -100, a, -100, b, 2) == 0:
            n += 1
print(n)
"""


def test_cve_2021_30465_mount_target_swapped_for_a_symlink(conch, make_bundle, cid, tmp_path):
    """A volume shared with another container (here a host helper, the racer)
    where `target` (a directory) and `link` (a symlink to a host directory) are
    swapped with renameat2(RENAME_EXCHANGE) in a loop, while 200 containers mount a
    tmpfs at /vol/target/a/b. A runtime that resolves the target, then mounts by
    path (or makes the missing a/b with os.makedirs) follows the symlink once the
    race hits: it creates a/b in the host directory, or mounts there. After the
    runs the host directory must be untouched and nothing mounted on it."""
    nr = RENAMEAT2.get(platform.machine())
    if nr is None:
        pytest.skip("renameat2 number unknown here")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("host\n")
    vol = tmp_path / "vol"
    (vol / "target").mkdir(parents=True)
    os.symlink(str(outside), vol / "link")
    before = snapshot(outside)
    b = make_bundle(["true"], copy_rootfs=True)
    inroot = os.path.join(b.config["root"]["path"], str(outside).lstrip("/"))
    b.config["mounts"] += [
        {"destination": "/vol", "type": "bind", "source": str(vol), "options": ["rbind"]},
        {"destination": "/vol/target/a/b", "type": "tmpfs", "source": "tmpfs",
         "options": ["size=64k"]},
    ]
    b.save()
    stop = tmp_path / "stop"
    racer = subprocess.Popen(["/usr/bin/python3", "-c", RACER, str(nr), str(vol / "target"),
                              str(vol / "link"), str(stop)], stdout=subprocess.PIPE, text=True)
    results = {"ok": 0, "failed": 0}
    failures = set()
    try:
        runs = 0
        deadline = time.monotonic() + 60
        while runs < 200 and time.monotonic() < deadline:
            r = conch("run", "-b", b.path, cid())
            results["ok" if r.returncode == 0 else "failed"] += 1
            if r.returncode:
                failures.add(message(r))
            runs += 1
            assert mounts_under(outside) == []
    finally:
        stop.write_text("")
        swaps = int(racer.communicate(timeout=30)[0] or 0)
    assert runs >= 200, f"only {runs} runs in the time given"
    assert swaps > 1000, f"the racer swapped only {swaps} times: the test proves nothing"
    assert results["ok"] > 0, results
    # the race was won at least once: conch then saw the symlink and followed it the way
    # the container would, inside the rootfs (where the missing a/ was made)
    assert os.path.isdir(inroot), "the race never hit: the test proves nothing"
    # a run that lost the race fails cleanly, naming the mount
    assert all('to rootfs at "/vol/target/a/b"' in m for m in failures), failures
    assert snapshot(outside) == before, "created or changed on the host"
    assert mounts_under(outside) == [] and mounts_under(vol) == []


# --- CVE-2024-45310: missing mount targets made through a symlink -----------------------------

@pytest.mark.parametrize("link", ["absolute", "relative"])
def test_cve_2024_45310_missing_targets_are_made_inside_the_root(conch, make_bundle, cid, tmp_path,
                                                                 link):
    """rootfs/mnt/link points at a host directory (absolutely, or with enough ../).
    Mounts onto /mnt/link/a/b (a tmpfs) and /mnt/link/f (a bind of a file) need
    missing directories and a file made. A naive runtime (os.makedirs, open(O_CREAT)
    on rootfs + destination) makes them in the host directory."""
    host = tmp_path / "host-victim"
    host.mkdir()
    before = snapshot(host)
    src = tmp_path / "src-file"
    src.write_text("bound\n")
    b = make_bundle(["sh", "-c", "cat /mnt/link/f; stat -f -c %T /mnt/link/a/b"], copy_rootfs=True)
    root = b.config["root"]["path"]
    os.makedirs(os.path.join(root, "mnt"), exist_ok=True)
    target = str(host) if link == "absolute" else "../" * 12 + str(host).lstrip("/")
    os.symlink(target, os.path.join(root, "mnt/link"))
    b.config["mounts"] += [
        {"destination": "/mnt/link/a/b", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/mnt/link/f", "type": "bind", "source": str(src), "options": ["bind"]},
    ]
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert snapshot(host) == before, "created on the host"
    # followed as the container sees it: made under the rootfs
    assert os.path.isdir(os.path.join(root, str(host).lstrip("/"), "a/b"))
    assert ok(r).splitlines() == ["bound", "tmpfs"]


# --- tmpcopyup in a hostile rootfs -------------------------------------------------------------

@pytest.mark.parametrize("runtime", ["conch", pytest.param("runc", marks=pytest.mark.runc)])
def test_tmpcopyup_copies_nothing_from_the_host(request, make_bundle, cid, tmp_path, runtime):
    """The directory a tmpfs with tmpcopyup goes over holds symlinks to a host
    directory (absolute, with enough ../, to a file, to a directory), and a second
    destination is itself such a symlink. A naive copy (runc before securejoin,
    shutil.copytree with symlinks=False) reads the host's files into the container,
    or mounts and writes in the host directory. conch copies the symlinks as they
    are, resolves the destination inside the root, and leaves the host as it was;
    runc on the same bundle does the same."""
    rt = request.getfixturevalue(runtime)
    host = tmp_path / "host-secret"
    host.mkdir()
    (host / "secret").write_text("host secret\n")
    before = snapshot(host)
    script = ("cd /copyup && for f in *; do echo $f $(readlink $f); done; "
              "cat /copyup/abs/secret /copyup/rel/secret /copyup/file /evil/secret; ls -A /evil")
    b = make_bundle(["sh", "-c", script], copy_rootfs=True)
    root = b.config["root"]["path"]
    data = os.path.join(root, "copyup")
    os.mkdir(data)
    up = "../" * 12 + str(host).lstrip("/")
    links = {"abs": str(host), "rel": up, "file": str(host / "secret"), "dot": "/"}
    for name, target in links.items():
        os.symlink(target, os.path.join(data, name))
    os.symlink(str(host), os.path.join(root, "evil"))
    b.config["mounts"] += [
        {"destination": "/copyup", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]},
        {"destination": "/evil", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]},
    ]
    b.save()
    r = rt("run", "-b", b.path, cid())
    assert r.returncode == 0, r.stderr  # ls -A /evil: an empty tmpfs
    assert "host secret" not in r.stdout
    assert r.stdout.splitlines() == [f"{n} {links[n]}" for n in sorted(links)]
    assert r.stderr.count("No such file or directory") == 4, r.stderr
    assert snapshot(host) == before and mounts_under(host) == []
    # /evil was followed as the container sees it: a directory made in the rootfs
    assert os.path.isdir(os.path.join(root, str(host).lstrip("/")))


# --- CVE-2024-21626: a stray host fd as cwd or executable -------------------------------------

def _with_fd(fd, argv):
    """argv run with `fd` dup2()ed to 7, not close-on-exec: a caller's stray fd."""
    code = "import os, sys; os.dup2(int(sys.argv[1]), 7); os.execv(sys.argv[2], sys.argv[2:])"
    return ["/usr/bin/python3", "-c", code, str(fd)] + list(argv)


@pytest.mark.parametrize("where", ["cwd", "args"])
def test_cve_2024_21626_stray_fd_leads_nowhere(conch, make_bundle, cid, tmp_path, where):
    """conch gets fd 7 of a host directory from its caller. With cwd=/proc/self/fd/7
    a naive runtime starts the process in the host directory (it can then walk
    ../../ to the host root); with args[0]=/proc/self/fd/7/echo (a busybox symlink
    there), a runtime that only marks fds close-on-exec runs the host binary, since
    execve resolves its path before it closes them."""
    busybox = shutil.which("busybox")
    host = tmp_path / "host-dir"
    host.mkdir()
    (host / "SECRET").write_text("host-secret\n")
    if busybox:
        shutil.copy(busybox, host / "busybox")
        os.symlink("busybox", host / "echo")
    before = snapshot(host)
    b = make_bundle(["sh", "-c", "pwd; cat SECRET; touch made-here"])
    if where == "cwd":
        b.process["cwd"] = "/proc/self/fd/7"
    else:
        if not busybox:
            pytest.skip("no host busybox")
        b.process["args"] = ["/proc/self/fd/7/echo", "ran-the-host-binary"]
    b.save()
    fd = os.open(host, os.O_RDONLY | os.O_DIRECTORY)
    try:
        c = cid()
        conch.ids.add(c)
        r = subprocess.run(_with_fd(fd, conch.cmd("run", "-b", b.path, c)), capture_output=True,
                           text=True, timeout=30, pass_fds=(fd,), stdin=subprocess.DEVNULL)
    finally:
        os.close(fd)
    assert "host-secret" not in r.stdout and "ran-the-host-binary" not in r.stdout, r.stdout
    msg = message(r)
    assert ("outside of container" in msg if where == "cwd"
            else "no such file or directory" in msg.lower()), msg
    assert snapshot(host) == before


# --- CVE-2022-29162: inheritable capabilities -------------------------------------------------

def test_cve_2022_29162_no_inheritable_capabilities_unless_asked(conch, make_bundle, cid, tmp_path):
    """The config lists no inheritable set and `exec --cap` adds a capability. A
    naive runtime (runc < 1.1.2) fills the inheritable set from the bounding set,
    or adds --cap there: a program with file capabilities then gains them."""
    b = make_bundle(["sh", "-c", "cat /proc/self/status; exec sleep 60"])
    b.process["capabilities"].pop("inheritable", None)
    b.save()
    c = cid()
    ok(detached_run(conch, tmp_path, "run", "-d", "-b", b.path, c))
    init = conch.state(c)["pid"]
    with open(f"/proc/{init}/status") as f:
        caps = status_caps(f.read())
    assert caps["CapInh"] == 0 and caps["CapBnd"] == cap_bits(b.process["capabilities"]["bounding"])
    caps = status_caps(ok(conch("exec", "--cap", "CAP_NET_RAW", c, "cat", "/proc/self/status")))
    assert caps["CapInh"] == 0
    assert caps["CapEff"] & cap_bits(["CAP_NET_RAW"])
    conch("delete", "--force", c)


# --- CVE-2023-25809: a writable /sys/fs/cgroup ------------------------------------------------

@pytest.mark.parametrize("userns", [False, True])
def test_cve_2023_25809_cgroup_mount_is_read_only_all_the_way_down(conch, make_bundle, cid, userns):
    """The spec's cgroup mount is `ro`. On a v1 host it is a tmpfs with one bind per
    hierarchy: a runtime that makes only the tmpfs read-only leaves every hierarchy
    writable, and the container makes cgroups (or moves processes) on the host."""
    b = make_bundle(["sh", "-c", "for d in /sys/fs/cgroup/*/; do mkdir $d/made-by-container "
                     "2>&1 | grep -o 'Read-only file system' || echo WRITABLE $d; done; "
                     "touch /sys/fs/cgroup/x 2>&1 | grep -o 'Read-only file system'"])
    if userns:
        b.linux["namespaces"].append({"type": "user"})
        b.linux["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
        b.linux["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    b.save()
    out = ok(conch("run", "-b", b.path, cid()))
    assert "WRITABLE" not in out, out
    assert out.count("Read-only file system") >= 2, out


# --- CVE-2025-31133: /dev/null replaced before masking ----------------------------------------

@pytest.mark.parametrize("null", ["symlink-to-procfs", "regular-file", "missing"])
def test_cve_2025_31133_mask_source_must_be_the_null_device(conch, make_bundle, cid, tmp_path,
                                                            null):
    """/dev comes from a host directory (bound) in which `null` is a symlink to
    /proc/sys/kernel/core_pattern, a plain file, or absent. A naive runtime
    bind-mounts whatever /dev/null is over the masked paths: core_pattern, writable,
    in place of /proc/kcore, or the file's content instead of nothing."""
    with open("/proc/sys/kernel/core_pattern") as f:
        core_pattern = f.read()
    devdir = tmp_path / "devdir"
    devdir.mkdir()
    if null == "symlink-to-procfs":
        os.symlink("/proc/sys/kernel/core_pattern", devdir / "null")
    elif null == "regular-file":
        (devdir / "null").write_text("not null\n")
    b = no_dev_mount(make_bundle(["cat", "/proc/kcore"]))
    b.config["mounts"].append({"destination": "/dev", "type": "bind", "source": str(devdir),
                               "options": ["rbind"]})
    b.save()
    r = conch("run", "-b", b.path, cid())
    msg = message(r)
    assert "/dev/null" in msg, msg
    assert "not null" not in r.stdout
    with open("/proc/sys/kernel/core_pattern") as f:
        assert f.read() == core_pattern


# --- CVE-2025-52565 / crun CVE-2026-88264: /dev/console redirected ----------------------------

class ConsoleReceiver:
    """A --console-socket that accepts one connection and keeps the fd sent over it."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(20)
        self.fds = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            _, anc, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4))
        for lvl, typ, data in anc:
            if lvl == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                self.fds.append(int.from_bytes(data[:4], "little"))

    def close(self):
        self.sock.close()
        self.thread.join(5)
        for fd in self.fds:
            os.close(fd)


def test_cve_2025_52565_console_symlink_is_not_followed(conch, make_bundle, cid, tmp_path):
    """The image's /dev (no tmpfs over it) has console -> /victim, a file of the
    image. A naive runtime bind-mounts the pty over what the symlink points at
    (inside the container, over a file it chose: /proc/sysrq-trigger would do)."""
    b = make_bundle(["true"], copy_rootfs=True)
    b.config["mounts"] = [m for m in b.config["mounts"] if m["destination"] != "/dev"]
    root = b.config["root"]["path"]
    with open(os.path.join(root, "victim"), "w") as f:
        f.write("victim\n")
    os.symlink("/victim", os.path.join(root, "dev/console"))
    b.process["terminal"] = True
    b.save()
    recv = ConsoleReceiver(str(tmp_path / "console.sock"))
    try:
        c = cid()
        r = detached_run(conch, tmp_path, "create", "--console-socket",
                         str(tmp_path / "console.sock"), "-b", b.path, c)
        if r.returncode == 0:  # then /victim must not be the terminal
            pid = conch.state(c)["pid"]
            with open(f"/proc/{pid}/mountinfo") as f:
                assert " /victim " not in f.read()
            conch("delete", "--force", c)
        else:
            assert "/dev/console" in message(r)
    finally:
        recv.close()
    with open(os.path.join(root, "victim")) as f:
        assert f.read() == "victim\n"
    assert os.path.islink(os.path.join(root, "dev/console"))


# --- CVE-2025-52881: mounts redirect the runtime's own /proc writes ---------------------------

def test_cve_2025_52881_mount_over_proc_sys_does_not_redirect_sysctls(conch, make_bundle, cid,
                                                                      tmp_path):
    """The config mounts a host directory over /proc/sys/net/ipv4 (after proc) and
    sets net.ipv4.ip_forward. /proc/sys itself is procfs; the file under it is the
    host's. A runtime that checks only /proc/sys (or nothing) writes "1" into the
    host file."""
    host = tmp_path / "fake-ipv4"
    host.mkdir()
    (host / "ip_forward").write_text("0\n")
    before = snapshot(host)
    b = make_bundle(["true"])
    b.config["mounts"].append({"destination": "/proc/sys/net/ipv4", "type": "bind",
                               "source": str(host), "options": ["rbind"]})
    b.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    b.save()
    msg = message(conch("run", "-b", b.path, cid()))
    assert "linux.sysctl.net.ipv4.ip_forward" in msg and "procfs" in msg, msg
    assert snapshot(host) == before


# --- CVE-2026-41579 / crun CVE-2026-47766: rootfs/dev is a symlink ----------------------------

@pytest.mark.parametrize("dev_mount", [False, True])
def test_cve_2026_41579_dev_symlink_does_not_reach_the_host(conch, make_bundle, cid, tmp_path,
                                                            dev_mount):
    """rootfs/dev -> a host directory. A naive runtime makes the device nodes and
    /dev symlinks (and with a /dev tmpfs, mounts it) in the host directory."""
    host = tmp_path / "host-dev"
    host.mkdir()
    before = snapshot(host)
    b = make_bundle(["ls", "/dev"], copy_rootfs=True)
    if not dev_mount:
        no_dev_mount(b)
    root = b.config["root"]["path"]
    shutil.rmtree(os.path.join(root, "dev"))
    os.symlink(str(host), os.path.join(root, "dev"))
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert "/dev" in message(r)
    assert snapshot(host) == before and mounts_under(host) == []


# --- crun CVE-2026-88265: /dev/null for stdio -------------------------------------------------

@pytest.mark.parametrize("userns", [False, True])
def test_crun_cve_2026_88265_dev_null_symlink_is_not_chowned(conch, make_bundle, cid, tmp_path,
                                                             userns):
    """The image's /dev/null (no tmpfs over /dev) is a symlink to a file of a host
    volume; the process runs as uid 1000 with the host's /dev/null as stdin. A naive
    runtime reopens /dev/null for the process's stdio and fchowns it to the
    process's user: the host file (or the host's /dev/null) changes owner."""
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "victim").write_text("host data\n")
    before = snapshot(vol)
    null_before = os.stat("/dev/null")
    b = no_dev_mount(make_bundle(["sh", "-c", "stat -c '%F %t:%T' /dev/null; cat; echo done"],
                                 copy_rootfs=True))
    root = b.config["root"]["path"]
    os.symlink("/vol/victim", os.path.join(root, "dev/null"))
    b.config["mounts"].append({"destination": "/vol", "type": "bind", "source": str(vol),
                               "options": ["rbind"]})
    b.process["user"] = {"uid": 1000, "gid": 1000}
    if userns:
        b.linux["namespaces"].append({"type": "user"})
        b.linux["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
        b.linux["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    b.save()
    with open("/dev/null", "rb") as devnull:
        r = conch("run", "-b", b.path, cid(), stdin=devnull)
    if userns and r.returncode:  # the host's node is bound over a file made with O_NOFOLLOW
        assert "/dev/null" in message(r) and "symbolic links" in message(r)
    else:
        assert ok(r) == "character special file 1:3\ndone\n"
    assert snapshot(vol) == before
    after = os.stat("/dev/null")
    assert (after.st_uid, after.st_gid, after.st_mode) == (null_before.st_uid, null_before.st_gid,
                                                            null_before.st_mode)


# --- CVE-2021-43784: the bootstrap IPC --------------------------------------------------------

def test_cve_2021_43784_large_state_reaches_the_init_whole(conch, make_bundle, cid, tmp_path):
    """An annotation of 150 KB goes to the init inside the state its hooks get. With
    a 16-bit length (runc's netlink bootstrap) the length wraps and the rest is read
    as more messages; with a fixed 64 KiB read it is cut short. The createContainer
    and startContainer hooks (run by the init) must get it whole."""
    out = tmp_path / "hooks"
    out.mkdir()
    big = "x" * 150_000 + "-END"
    b = make_bundle(["true"])
    b.config["annotations"] = {"org.example.big": big}
    b.config["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                               "options": ["rbind"]})
    # createContainer hooks run before pivot_root (the host's paths), startContainer after
    b.config["hooks"] = {
        "createContainer": [{"path": "/bin/sh",
                             "args": ["sh", "-c", f"cat > {out}/createContainer"]}],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /out/startContainer"]}]}
    b.save()
    ok(conch("run", "-b", b.path, cid()))
    for kind in ("createContainer", "startContainer"):
        state = json.loads((out / kind).read_text())
        assert state["annotations"]["org.example.big"] == big, kind
    # past what a socket can carry in one message: a clear error, nothing left
    b.config["annotations"] = {"org.example.big": "y" * 400_000}
    b.save()
    assert "too large" in message(conch("run", "-b", b.path, cid()))
    assert conch("list", "-q").stdout == ""


# --- GHSA-5g49-rx9x-qfc6: resources.unified keys with path separators -------------------------

@pytest.mark.parametrize("key", ["../../cgroup.procs", "../x", "a/b", "..", "cgroup.procs/"])
def test_ghsa_5g49_unified_keys_must_be_file_names(conch, make_bundle, cid, key):
    """linux.resources.unified names cgroup files; a key with / or .. would write
    outside the container's cgroup (the parent's cgroup.procs). A naive runtime
    joins the key to the cgroup path and writes there."""
    b = make_bundle()
    b.linux.setdefault("resources", {})["unified"] = {key: "0"}
    b.save()
    msg = message(conch("run", "-b", b.path, cid()))
    assert "linux.resources.unified" in msg and key in msg, msg
    assert conch("list", "-q").stdout == ""


# --- Python-specific (cf. CVE-2019-14271): nothing loaded from the container ------------------

IN_ACCESS, IN_OPEN = 0x1, 0x20


class Watch:
    """inotify on paths of the rootfs: any open or read of them is recorded."""

    def __init__(self, paths):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        self.wds = {}
        for p in paths:
            wd = self.libc.inotify_add_watch(self.fd, os.fsencode(p), IN_OPEN | IN_ACCESS)
            assert wd >= 0, (p, ctypes.get_errno())
            self.wds[wd] = p

    def events(self):
        out = []
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return out
        i = 0
        while i < len(data):
            wd = int.from_bytes(data[i:i + 4], "little", signed=True)
            mask = int.from_bytes(data[i + 4:i + 8], "little")
            n = int.from_bytes(data[i + 12:i + 16], "little")
            name = data[i + 16:i + 16 + n].rstrip(b"\0").decode()
            out.append((self.wds.get(wd, wd), name, mask))
            i += 16 + n
        return out

    def close(self):
        os.close(self.fd)


def test_python_nothing_is_loaded_from_the_container(conch, make_bundle, cid, tmp_path):
    """conch's init is Python. After pivot_root, pwd/grp lookups (NSS loads
    libnss_*.so named by the image's nsswitch.conf), a lazy import (python's path
    is searched in the image: /usr/lib/python3.x, conch's own directory) or
    ctypes.util.find_library would run the image's code as root on the host's side.
    The image here has all of those planted; inotify watches them through a run
    with a user without HOME (looked up), groups, hooks, seccomp, and an exec with
    --user. A naive runtime that calls pwd.getpwuid for HOME opens nsswitch.conf."""
    b = make_bundle(["sh", "-c", "echo $HOME; id -G; exec sleep 60"], copy_rootfs=True)
    root = b.config["root"]["path"]
    stdlib = os.path.dirname(os.__file__)
    pydirs = {stdlib, os.path.join(stdlib, "lib-dynload"), REPO, os.path.join(REPO, "conch"),
              os.path.join(REPO, "conch", "cli")}
    planted = []
    for d in pydirs:
        full = os.path.join(root, d.lstrip("/"))
        os.makedirs(full, exist_ok=True)
        for mod in ("pwd.py", "grp.py", "ctypes.py", "array.py", "json.py", "traceback.py",
                    "__init__.py"):
            with open(os.path.join(full, mod), "w") as f:
                f.write("raise SystemExit('imported from the container')\n")
        planted.append(full)
    libdir = os.path.join(root, "lib/x86_64-linux-gnu")
    os.makedirs(libdir)
    for name in ("libnss_evil.so.2", "libnss_files.so.2", "libc.so.6", "libseccomp.so.2"):
        with open(os.path.join(libdir, name), "w") as f:
            f.write("not an ELF\n")
        planted.append(os.path.join(libdir, name))
    for name, text in (("nsswitch.conf", "passwd: evil files\ngroup: evil files\n"),
                       ("ld.so.cache", "junk"),
                       ("ld.so.preload", "/lib/x86_64-linux-gnu/libc.so.6\n")):
        with open(os.path.join(root, "etc", name), "w") as f:
            f.write(text)
        planted.append(os.path.join(root, "etc", name))
    planted.append(libdir)
    b.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [100]}
    b.process["env"] = ["PATH=/bin"]
    b.config["hooks"] = {k: [{"path": "/bin/true"}] for k in ("createContainer", "startContainer")}
    b.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]}
    b.save()
    w = Watch(planted)
    try:
        c = cid()
        r = detached_run(conch, tmp_path, "run", "-d", "-b", b.path, c)
        ok(r)
        ex = conch("exec", "--user", "1000:100", "-g", "1000", c, "sh", "-c", "echo $HOME")
        bad = conch("exec", "--user", "1000", c, "no-such-program")
        conch("delete", "--force", c)
        events = w.events()
    finally:
        w.close()
    assert ok(ex) == "/home/user\n"
    assert "executable file not found" in message(bad)
    assert events == [], events


# --- capabilities -----------------------------------------------------------------------------

def host_caps():
    """The capability names in this process's bounding set (a container gets no more)."""
    from conch.config import CAPS
    with open("/proc/self/status") as f:
        bnd = status_caps(f.read())["CapBnd"]
    return [n for i, n in enumerate(CAPS) if bnd & (1 << i)]


@pytest.mark.parametrize("user", [0, 1000])
def test_capability_sets_as_written_and_as_runc(conch, runc, make_bundle, cid, user):
    """Five different sets. What the process shows is after its execve: the kernel
    keeps the bounding and inheritable sets, keeps an ambient cap only if it is also
    permitted and inheritable, and recomputes permitted and effective from them (for
    root as if the binary had every file capability). runc on the same bundle must
    show the same five."""
    b = make_bundle(["cat", "/proc/self/status"])
    sets = {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID", "CAP_SYS_CHROOT"],
            "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
            "effective": ["CAP_KILL"],
            "inheritable": ["CAP_NET_RAW", "CAP_SYS_CHROOT"],
            "ambient": ["CAP_NET_RAW", "CAP_SYS_CHROOT"]}
    b.process["capabilities"] = sets
    b.process["user"] = {"uid": user, "gid": user}
    b.save()
    caps = status_caps(ok(conch("run", "-b", b.path, cid())))
    assert caps["CapBnd"] == cap_bits(sets["bounding"])
    assert caps["CapInh"] == cap_bits(sets["inheritable"])
    assert caps["CapAmb"] == cap_bits(["CAP_NET_RAW"])  # SYS_CHROOT is not permitted
    assert caps == status_caps(ok(runc("run", "-b", b.path, cid())))


def test_every_capability_there_is_and_nothing_above(conch, make_bundle, cid):
    """Every capability this host grants, in every set: the container has exactly
    those; a bit above the kernel's last capability is never set."""
    names = host_caps()
    b = make_bundle(["cat", "/proc/self/status"])
    b.process["capabilities"] = {k: list(names) for k in ("bounding", "permitted", "effective",
                                                          "inheritable")}
    b.save()
    caps = status_caps(ok(conch("run", "-b", b.path, cid())))
    want = cap_bits(names)
    assert caps["CapBnd"] == caps["CapEff"] == caps["CapPrm"] == caps["CapInh"] == want
    assert want < 1 << (last_cap() + 1)


@pytest.mark.parametrize("which", ["bounding", "effective", "permitted", "inheritable", "ambient"])
def test_unknown_capability_is_ignored_with_a_warning(conch, make_bundle, cid, which):
    # as runc 1.1: not granted, not an error; a warning names it
    b = make_bundle(["cat", "/proc/self/status"])
    caps = b.process["capabilities"]
    caps[which] = caps.get(which, []) + ["CAP_MAKE_COFFEE"]
    b.save()
    r = conch("run", "-b", b.path, cid())
    assert r.returncode == 0, r.stderr
    assert ('level=warning msg="ignoring unknown or unavailable capabilities: '
            '[CAP_MAKE_COFFEE]"') in r.stderr
    key = {"bounding": "CapBnd", "effective": "CapEff", "permitted": "CapPrm"}.get(which)
    if key:  # the known name beside it is applied (inheritable, ambient: nothing to see)
        assert status_caps(r.stdout)[key] & (1 << 5)  # CAP_KILL


# --- LSM labels on a host without AppArmor and SELinux ----------------------------------------

def _lsm_host():
    from conch import lsm
    return lsm.apparmor_enabled(), lsm.selinux_enabled()


def test_lsm_detection_matches_the_host():
    apparmor, selinux = _lsm_host()
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            aa = f.read().startswith("Y")
    except OSError:
        aa = False
    assert apparmor == (aa and os.path.isdir("/sys/kernel/security/apparmor"))
    assert selinux == os.path.exists("/sys/fs/selinux/enforce")


@pytest.mark.parametrize("field, value, lsm", [
    ("process.apparmorProfile", "docker-default", "AppArmor"),
    ("process.selinuxLabel", "system_u:system_r:container_t:s0", "SELinux"),
    ("linux.mountLabel", "system_u:object_r:container_file_t:s0", "SELinux"),
])
def test_label_the_host_cannot_apply_is_a_clear_error(conch, make_bundle, cid, field, value, lsm):
    """Running unconfined when confinement was asked would be silent: the error
    names the field and the missing LSM, before anything is made."""
    apparmor, selinux = _lsm_host()
    if (lsm == "AppArmor" and apparmor) or (lsm == "SELinux" and selinux):
        pytest.skip(f"this host has {lsm}")
    b = make_bundle()
    section, key = field.split(".")
    b.config[section][key] = value
    b.save()
    msg = message(conch("run", "-b", b.path, cid()))
    assert f"failed: {field}: " in msg and lsm in msg and "not enabled on this host" in msg, msg
    assert conch("list", "-q").stdout == ""
