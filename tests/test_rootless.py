"""Rootless containers: conch run by an unprivileged user (runc's "add support for
rootless containers").

A throwaway user is made for this module (useradd, with a home), given its own
/etc/subuid and /etc/subgid lines, and removed afterwards with its lines, its
home and anything it left running, even when a test fails. conch runs as that
user through setpriv with a scrubbed environment (PATH, HOME and an
XDG_RUNTIME_DIR it owns); the bundles live in its home, made by
`conch spec --rootless` run as the user, on a copy of the session rootfs it owns.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import REPO, SESSION, Runtime, _leftovers
from conftest import Bundle
from helpers import state_record, wait_for

NAME = f"conchrl{SESSION}"
SUB_START = 400000  # this user's subordinate ids: SUB_START .. SUB_START+65535
SUB_COUNT = 65536
UNIFIED = "/sys/fs/cgroup/unified"
CGROUP_COMMANDS = ("pause", "resume", "ps", "update", "events", "checkpoint", "restore")




def _drop_lines(path, name):
    with open(path) as f:
        lines = f.readlines()
    keep = [ln for ln in lines if not ln.startswith(name + ":")]
    if keep != lines:
        with open(path, "w") as f:
            f.writelines(keep)


def _procs_of(uid):
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.stat(f"/proc/{pid}").st_uid == uid:
                    out.append(int(pid))
            except OSError:
                pass
    return out


class User:
    """The throwaway user: its ids, home, XDG_RUNTIME_DIR and conch launcher."""

    def __init__(self, name):
        import pwd
        pw = pwd.getpwnam(name)
        self.name, self.uid, self.gid, self.home = name, pw.pw_uid, pw.pw_gid, pw.pw_dir
        self.xdg = os.path.join(self.home, "xdg")
        self.launcher = os.path.join(self.home, "conch")

    def env(self, xdg=True):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self.home}
        if xdg:
            env["XDG_RUNTIME_DIR"] = self.xdg
        return env

    def argv(self, xdg=True):
        """setpriv as the user, with a scrubbed environment."""
        return (["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                 "env", "-i"] + [f"{k}={v}" for k, v in self.env(xdg).items()])

    def chown(self, path):
        for dirpath, dirnames, filenames in os.walk(path):
            os.lchown(dirpath, self.uid, self.gid)
            for n in dirnames + filenames:
                os.lchown(os.path.join(dirpath, n), self.uid, self.gid)


@pytest.fixture(scope="module")
def user():
    for tool in ("useradd", "userdel", "setpriv", "newuidmap", "newgidmap"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    made = False
    try:
        # no automatic subordinate ids: this module writes its own lines
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", "-K", "SUB_UID_COUNT=0",
                        "-K", "SUB_GID_COUNT=0", NAME], check=True, capture_output=True)
        made = True
        for path in ("/etc/subuid", "/etc/subgid"):
            _drop_lines(path, NAME)
            with open(path, "a") as f:
                f.write(f"{NAME}:{SUB_START}:{SUB_COUNT}\n")
        u = User(NAME)
        os.makedirs(u.xdg, 0o700)
        os.chown(u.xdg, u.uid, u.gid)
        with open(os.path.join(REPO, "tools", "conch-launcher.in")) as f:
            launcher = f.read().replace("@LIBDIR@", REPO)
        with open(u.launcher, "w") as f:
            f.write(launcher)
        os.chmod(u.launcher, 0o755)
        yield u
    finally:
        if made:
            import pwd
            uid = pwd.getpwnam(NAME).pw_uid
            for pid in _procs_of(uid):  # only this throwaway user's processes
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            subprocess.run(["userdel", "-r", "-f", NAME], capture_output=True)
            home = f"/home/{NAME}"
            if os.path.isdir(home):
                shutil.rmtree(home)
        for path in ("/etc/subuid", "/etc/subgid"):
            _drop_lines(path, NAME)
    # nothing of it is left
    with open("/etc/passwd") as f:
        assert not any(ln.startswith(NAME + ":") for ln in f)
    for path in ("/etc/subuid", "/etc/subgid"):
        with open(path) as f:
            assert NAME not in f.read()
    assert not os.path.exists(f"/home/{NAME}")


@pytest.fixture
def rl(user, request):
    """conch run as the user, with --root at its default ($XDG_RUNTIME_DIR/conch)."""
    rt = Runtime(user.argv() + [user.launcher], os.path.join(user.xdg, "conch"), "conch-rootless")
    rt.user = user
    yield rt
    rt.cleanup()
    problems = _leftovers(rt, user.home)
    assert not problems, "; ".join(problems)
    # a container's last processes may still be exiting (its pid namespace going away)
    left = []
    for _ in range(250):
        left = _procs_of(user.uid)
        if not left:
            break
        time.sleep(0.02)
    assert not left, f"processes of the rootless user left: {_cmdlines(left)}"


def _cmdlines(pids):
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                out.append((pid, f.read()[:80]))
        except OSError:
            pass
    return out


class RBundle(Bundle):
    """A bundle in the user's home from `conch spec --rootless` run as the user."""

    def __init__(self, rt, rootfs, name, args):
        u = rt.user
        self.path = os.path.join(u.home, name)
        os.makedirs(self.path)
        shutil.copytree(rootfs, os.path.join(self.path, "rootfs"), symlinks=True)
        u.chown(self.path)
        r = rt("spec", "--rootless", "-b", self.path, root=False)
        assert r.returncode == 0, r.stderr
        with open(os.path.join(self.path, "config.json")) as f:
            self.config = json.load(f)
        self.config["process"]["terminal"] = False
        self.config["process"]["args"] = list(args)
        self.save()

    def host(self, path):
        return os.path.join(self.path, "rootfs", path.lstrip("/"))


@pytest.fixture
def rbundle(rl, rootfs, request):
    n = [0]
    made = []

    def make(args=("true",)):
        n[0] += 1
        name = f"b-{request.node.name[:40]}-{n[0]}".replace("[", "-").replace("]", "")
        b = RBundle(rl, rootfs, name, args)
        made.append(b.path)
        return b

    yield make
    for p in made:
        shutil.rmtree(p, ignore_errors=True)


def add_caps(b, *caps):
    for k in ("bounding", "effective", "permitted"):
        b.process["capabilities"][k] = sorted(set(b.process["capabilities"][k]) | set(caps))


# --- the spec -------------------------------------------------------------------------

def test_spec_rootless_maps_the_caller_to_root(rl, rbundle):
    b = rbundle()
    cfg = b.config
    types = [ns["type"] for ns in cfg["linux"]["namespaces"]]
    assert "user" in types and "network" not in types
    u = rl.user
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": u.uid, "size": 1}]
    assert cfg["linux"]["gidMappings"] == [{"containerID": 0, "hostID": u.gid, "size": 1}]
    assert "resources" not in cfg["linux"]
    sys_mount = [m for m in cfg["mounts"] if m["destination"] == "/sys"][0]
    assert sys_mount["type"] == "none" and "rbind" in sys_mount["options"]
    devpts = [m for m in cfg["mounts"] if m["type"] == "devpts"][0]
    assert not any(o.startswith("gid=") for o in devpts["options"])


# --- run, files, the lifecycle --------------------------------------------------------

def test_run_maps_the_caller_to_root(rl, rbundle, cid):
    b = rbundle(["sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map "
                 "/proc/self/setgroups; cat /proc/self/status | grep NoNewPrivs"])
    c = cid()
    r = rl("run", "-b", b.path, c)
    assert r.returncode == 0, r.stderr
    lines = [ln.split() for ln in r.stdout.splitlines()]
    u = rl.user
    assert lines[0] == ["0"] and lines[1] == ["0"]
    assert lines[2] == ["0", str(u.uid), "1"]
    assert lines[3] == ["0", str(u.gid), "1"]
    assert lines[4] == ["deny"]  # an unprivileged gid_map needs setgroups denied
    assert r.stderr == ""  # no cgroup, and no resources asked: no warning
    assert os.listdir(rl.root) == []  # run deleted it


def test_files_made_in_the_container_belong_to_the_caller(rl, rbundle, cid):
    b = rbundle(["sh", "-c", "touch /made && mkdir /made-dir && ls -ln /made"])
    b.config["root"]["readonly"] = False
    b.save()
    r = rl("run", "-b", b.path, cid())
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[2:4] == ["0", "0"]
    for p in ("/made", "/made-dir"):
        st = os.stat(b.host(p))
        assert (st.st_uid, st.st_gid) == (rl.user.uid, rl.user.gid)


def test_read_only_root_and_sys(rl, rbundle, cid):
    b = rbundle(["sh", "-c", "touch /x 2>&1; touch /sys/x 2>&1; "
                 "grep -E ' /sys | /sys/fs/cgroup ' /proc/self/mountinfo"])
    r = rl("run", "-b", b.path, cid())
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("Read-only file system") == 2
    mounts = {ln.split()[4]: ln.split()[5] for ln in r.stdout.splitlines() if " - " in ln}
    assert mounts["/sys"].startswith("ro") and mounts["/sys/fs/cgroup"].startswith("ro")


def test_sysfs_without_a_network_namespace_becomes_a_bind(rl, rbundle, cid):
    """A user namespace that does not own the network namespace may not mount sysfs:
    conch binds the host's /sys instead, with the mount's flags."""
    b = rbundle(["sh", "-c", "ls /sys/kernel >/dev/null && touch /sys/x"])
    for m in b.config["mounts"]:
        if m["destination"] == "/sys":
            m.update(type="sysfs", source="sysfs", options=["nosuid", "noexec", "nodev", "ro"])
    b.save()
    r = rl("run", "-b", b.path, cid())
    assert r.returncode == 1, r.stderr
    assert "Read-only file system" in r.stderr


def test_lifecycle_create_start_state_list_exec_kill_delete(rl, rbundle, cid):
    b = rbundle(["sh", "-c", 'trap "exit 7" TERM; echo ready; while :; do sleep 0.1; done'])
    b.config["root"]["readonly"] = False
    b.save()
    c = cid()
    r = rl("create", "-b", b.path, c)
    assert r.returncode == 0, r.stderr
    st = rl.state(c)
    assert st["status"] == "created" and st["pid"] > 0
    # the waiting init is not dumpable: the kernel gives its /proc files to root
    assert os.stat(f"/proc/{st['pid']}/environ").st_uid == 0
    e = rl("exec", c, "true")  # so it cannot be joined yet
    assert e.returncode == 255 and "exec needs a started container" in e.stderr, e.stderr
    assert rl("start", c).returncode == 0
    assert rl.state(c)["status"] == "running"
    assert os.stat(f"/proc/{st['pid']}/environ").st_uid == rl.user.uid  # the user's process

    lst = rl("list")
    assert lst.returncode == 0, lst.stderr
    row = [ln.split() for ln in lst.stdout.splitlines() if ln.startswith(c)][0]
    assert row[2] == "running" and row[-1] == rl.user.name
    js = json.loads(rl("list", "-f", "json").stdout)
    assert [d["id"] for d in js] == [c]

    e = rl("exec", c, "sh", "-c", "id -u; touch /exec-made; echo $$")
    assert e.returncode == 0, e.stderr
    assert e.stdout.split()[0] == "0"
    assert os.stat(b.host("/exec-made")).st_uid == rl.user.uid
    t = rl("exec", "-t", c, "tty")
    assert t.returncode == 0, t.stderr
    assert t.stdout.strip().startswith("/dev/pts/")

    assert rl("kill", c, "TERM").returncode == 0
    wait_for(lambda: rl.state(c)["status"] == "stopped", what="stopped")
    assert rl("delete", c).returncode == 0
    r = rl("state", c)
    assert r.returncode == 1 and "container does not exist" in r.stderr
    assert os.listdir(rl.root) == []


def test_run_with_a_terminal(rl, rbundle, cid):
    b = rbundle(["sh", "-c", "tty; stat -c %u $(tty); exit 4"])
    b.process["terminal"] = True
    b.save()
    r = rl("run", "-b", b.path, cid())
    assert r.returncode == 4, r.stderr
    lines = r.stdout.replace("\r", "").split("\n")
    assert lines[0].startswith("/dev/pts/") and lines[1] == "0"


def test_exec_ps_sees_the_container(rl, rbundle, cid):
    b = rbundle(["sleep", "1000"])
    c = cid()
    assert rl("run", "-d", "-b", b.path, c).returncode == 0
    e = rl("exec", c, "ps", "-o", "pid,comm")
    assert e.returncode == 0, e.stderr
    rows = [ln.split() for ln in e.stdout.splitlines()[1:]]
    assert ["1", "sleep"] in rows and any(r[1] == "ps" for r in rows)
    assert rl("kill", c, "KILL").returncode == 0
    wait_for(lambda: rl.state(c)["status"] == "stopped", what="stopped")
    assert rl("delete", c).returncode == 0


def test_delete_force_of_a_running_container(rl, rbundle, cid):
    b = rbundle(["sleep", "1000"])
    c = cid()
    assert rl("run", "-d", "-b", b.path, c).returncode == 0
    pid = rl.state(c)["pid"]
    assert rl("delete", "--force", c).returncode == 0
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), what="the init gone")
    assert os.listdir(rl.root) == []


def test_a_bind_keeps_the_flags_the_kernel_locks(rl, rbundle, cid):
    """A bind of a nosuid,nodev,noexec mount, remounted read-only in the user namespace:
    the remount must keep the flags the kernel locked there, or it fails (EPERM)."""
    b = rbundle(["sh", "-c", "grep ' /locked ' /proc/self/mountinfo; touch /locked/x"])
    src = os.path.join(b.path, "locked-src")
    os.mkdir(src)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "nosuid,nodev,noexec,mode=755", "tmpfs", src],
                   check=True)
    try:
        b.config["mounts"].append({"destination": "/locked", "type": "bind", "source": src,
                                   "options": ["bind", "ro"]})
        b.save()
        r = rl("run", "-b", b.path, cid())
        assert r.returncode == 1, r.stderr
        opts = r.stdout.split()[5].split(",")
        assert {"ro", "nosuid", "nodev", "noexec"} <= set(opts), r.stdout
        assert "Read-only file system" in r.stderr
    finally:
        subprocess.run(["umount", src], check=True)


# --- the state directory ----------------------------------------------------------------

def test_state_lives_in_xdg_runtime_dir(rl, rbundle, cid):
    b = rbundle(["sleep", "1000"])
    c = cid()
    r = rl("run", "-d", "-b", b.path, c, root=False)  # no --root: the default
    assert r.returncode == 0, r.stderr
    d = os.path.join(rl.user.xdg, "conch")
    assert os.listdir(d) == [c]
    st = os.stat(d)
    assert st.st_uid == rl.user.uid and st.st_mode & 0o777 == 0o700
    assert rl("delete", "-f", c, root=False).returncode == 0
    assert os.listdir(d) == []


def test_without_xdg_runtime_dir_a_clear_error(rl, rbundle, cid):
    u = rl.user
    argv = u.argv(xdg=False) + [u.launcher]
    for args in (["list"], ["run", "-b", rbundle().path, cid()]):
        r = subprocess.run(argv + args, capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 1
        assert "XDG_RUNTIME_DIR is not set and /run/conch is not writable" in r.stderr
        assert "--root" in r.stderr


# --- id mappings through newuidmap/newgidmap ------------------------------------------

def test_several_ranges_through_newuidmap(rl, rbundle, cid):
    b = rbundle(["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; "
                 "touch /f && chown 1000:1000 /f && ls -ln /f"])
    b.config["root"]["readonly"] = False
    u = rl.user
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": u.uid, "size": 1},
                              {"containerID": 1, "hostID": SUB_START, "size": SUB_COUNT}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": u.gid, "size": 1},
                              {"containerID": 1, "hostID": SUB_START, "size": SUB_COUNT}]
    add_caps(b, "CAP_CHOWN")
    b.save()
    r = rl("run", "-b", b.path, cid())
    assert r.returncode == 0, r.stderr
    lines = [ln.split() for ln in r.stdout.splitlines()]
    assert lines[:2] == [["0", str(u.uid), "1"], ["1", str(SUB_START), str(SUB_COUNT)]]
    assert lines[2:4] == [["0", str(u.gid), "1"], ["1", str(SUB_START), str(SUB_COUNT)]]
    assert lines[4][2:4] == ["1000", "1000"]
    st = os.stat(b.host("/f"))
    assert (st.st_uid, st.st_gid) == (SUB_START + 999, SUB_START + 999)


REOPEN = ("echo out >> /proc/self/fd/1; echo err >> /proc/self/fd/2; "
          "stat -L -c %u:%g /proc/self/fd/1 >> /proc/self/fd/1")


def _caller_pipes(rt, *args):
    """Run conch with stdout and stderr on pipes the (unprivileged) caller owns, as an
    engine running rootless makes them; (status, stdout, stderr)."""
    u = rt.user
    fds = [os.pipe(), os.pipe()]
    for _, w in fds:
        os.fchown(w, u.uid, u.gid)  # a pipe's ends are one inode
    try:
        p = subprocess.Popen(rt.cmd(*args), stdin=subprocess.DEVNULL, stdout=fds[0][1],
                             stderr=fds[1][1])
        for _, w in fds:
            os.close(w)
        outs = []
        for r, _ in fds:
            with open(r, "rb", closefd=False) as f:
                outs.append(f.read().decode())
        return p.wait(30), outs[0], outs[1]
    finally:
        for r, w in fds:
            for fd in (r, w):
                try:
                    os.close(fd)
                except OSError:
                    pass


def test_stdio_is_given_to_the_user_of_the_process(rl, rbundle, cid):
    """runc's fixStdioPermissions, rootless: the caller's pipes (the container's root's,
    in its user namespace) are given to the process's user, which can then reopen them
    through /proc/self/fd; the group is kept."""
    b = rbundle(["sh", "-c", REOPEN])
    u = rl.user
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": u.uid, "size": 1},
                              {"containerID": 1, "hostID": SUB_START, "size": SUB_COUNT}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": u.gid, "size": 1},
                              {"containerID": 1, "hostID": SUB_START, "size": SUB_COUNT}]
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.save()
    assert _caller_pipes(rl, "run", "-b", b.path, cid()) == (0, "out\n1000:0\n", "err\n")
    # and an exec'd process of that user
    b.process["args"] = ["sleep", "100"]
    b.save()
    c = cid()
    r = rl("run", "-d", "-b", b.path, c)
    assert r.returncode == 0, r.stderr
    assert _caller_pipes(rl, "exec", "-u", "1000:1000", c, "sh", "-c", REOPEN) == \
        (0, "out\n1000:0\n", "err\n")
    assert rl("delete", "--force", c).returncode == 0


@pytest.mark.parametrize("field", ["uidMappings", "gidMappings"])
def test_a_range_not_granted_is_refused(rl, rbundle, cid, field):
    b = rbundle(["true"])
    own = rl.user.uid if field == "uidMappings" else rl.user.gid
    b.linux[field] = [{"containerID": 0, "hostID": own, "size": 1},
                      {"containerID": 1, "hostID": 900000, "size": 1000}]
    b.save()
    r = rl("run", "-b", b.path, cid())
    assert r.returncode == 1
    path = "/etc/subuid" if field == "uidMappings" else "/etc/subgid"
    assert (f"linux.{field}[1]: range 900000-900999 is not allowed for user {NAME} by {path}"
            in r.stderr), r.stderr
    assert os.listdir(rl.root) == []


def test_a_range_newuidmap_refuses_names_the_field(rl, rbundle, cid):
    b = rbundle(["true"])
    u = rl.user
    # both ranges are granted, but they overlap in the container: the kernel refuses
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": u.uid, "size": 1},
                              {"containerID": 0, "hostID": SUB_START, "size": 10}]
    b.save()
    r = rl("run", "-b", b.path, cid())
    assert r.returncode == 1
    assert "linux.uidMappings: newuidmap: write to uid_map failed" in r.stderr, r.stderr
    assert os.listdir(rl.root) == []


# --- cgroups ----------------------------------------------------------------------------

def test_resources_without_a_cgroup_warn(rl, rbundle, cid):
    b = rbundle(["true"])
    b.linux["resources"] = {"memory": {"limit": 100 << 20}, "pids": {"limit": 50}}
    b.save()
    r = rl("run", "-b", b.path, cid())
    assert r.returncode == 0, r.stderr
    assert "warning: linux.resources (memory, pids) not applied" in r.stderr
    assert "no cgroup" in r.stderr


def test_rootless_false_makes_cgroup_errors_fatal(rl, rbundle, cid):
    b = rbundle(["true"])
    c = cid()
    r = rl("--rootless", "false", "run", "-b", b.path, c, root=False)
    assert r.returncode == 1
    assert "Permission denied" in r.stderr and "--rootless false" in r.stderr
    assert rl("--rootless", "true", "run", "-b", b.path, c, root=False).returncode == 0
    r = rl("--rootless", "maybe", "list", root=False)
    assert r.returncode == 1 and 'invalid --rootless value maybe' in r.stderr


def test_cgroup_commands_say_why_they_cannot_work(rl, rbundle, cid):
    """The seed commit disabled pause, resume, ps, update, events, checkpoint and
    restore for rootless containers: without a cgroup they fail, saying so."""
    import conch.cli as cli
    b = rbundle(["sleep", "1000"])
    c = cid()
    assert rl("run", "-d", "-b", b.path, c).returncode == 0
    st = state_record(rl.root, c)
    assert st["cgroup"] is None
    for cmd in CGROUP_COMMANDS:
        r = rl(cmd, c)
        assert r.returncode != 0, cmd
        if cmd == "resume":  # it never was paused: that comes first
            assert "container not paused" in r.stderr, r.stderr
        elif cmd in cli.IMPLEMENTED and cmd != "restore":
            assert "needs the container's cgroup" in r.stderr, (cmd, r.stderr)
        elif cmd not in cli.IMPLEMENTED:
            assert "not implemented yet" in r.stderr, (cmd, r.stderr)
    assert rl.state(c)["status"] == "running"  # nothing was done to it
    assert rl("delete", "-f", c).returncode == 0


@pytest.fixture
def delegated(user, rl):
    """A cgroup v2 directory delegated to the user (chowned, as systemd's Delegate=),
    which conch runs in: the container's cgroup is made under it."""
    if not os.path.exists(os.path.join(UNIFIED, "cgroup.procs")):
        pytest.skip("no cgroup2 hierarchy at " + UNIFIED)
    d = os.path.join(UNIFIED, f"conch-{NAME}")
    os.mkdir(d)
    try:
        for n in [""] + os.listdir(d):
            os.chown(os.path.join(d, n), user.uid, user.gid)
        yield d
    finally:
        rl.cleanup()  # conch's own delete first; then whatever is left
        for dirpath, dirnames, _ in sorted(os.walk(d), key=lambda t: -t[0].count("/")):
            try:
                with open(os.path.join(dirpath, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        try:
                            os.kill(int(pid), 9)
                        except ProcessLookupError:
                            pass
            except OSError:
                pass
        for dirpath, _, _ in sorted(os.walk(d), key=lambda t: -t[0].count("/")):
            wait_for(lambda p=dirpath: _rmdir(p), what=f"rmdir {dirpath}")


def _rmdir(path):
    try:
        os.rmdir(path)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def test_a_delegated_cgroup_v2_subtree_is_used(rl, rbundle, cid, delegated):
    # conch starts inside the delegated cgroup (root puts the shell there, then drops)
    rl.argv0 = ["sh", "-c", f'echo $$ > {delegated}/cgroup.procs && exec "$@"', "sh"] + rl.argv0
    b = rbundle(["sleep", "1000"])
    c = cid()
    r = rl("run", "-d", "-b", b.path, c)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr
    cg = os.path.join(delegated, c)
    assert state_record(rl.root, c)["cgroup"] == {"version": 2, "dirs": {"": cg}}
    pid = rl.state(c)["pid"]
    with open(os.path.join(cg, "cgroup.procs")) as f:
        assert str(pid) in f.read().split()
    e = rl("exec", c, "true")  # the exec process joins it too
    assert e.returncode == 0, e.stderr
    # the cgroup commands work on it
    import conch.cli as cli
    if "pause" in cli.IMPLEMENTED:
        r = rl("pause", c)
        assert r.returncode == 0, r.stderr
        assert rl.state(c)["status"] == "paused"
        r = rl("resume", c)
        assert r.returncode == 0, r.stderr
        assert rl.state(c)["status"] == "running"
    if "ps" in cli.IMPLEMENTED:
        r = rl("ps", c)
        assert r.returncode == 0, r.stderr
        assert str(pid) in r.stdout
    assert rl("delete", "-f", c).returncode == 0
    assert not os.path.exists(cg)


# --- the rest -------------------------------------------------------------------------

def test_idmapped_mounts_are_refused_rootless(rl, rbundle, cid):
    b = rbundle(["true"])
    b.config["mounts"].append({"destination": "/mnt", "type": "bind", "source": b.path,
                               "options": ["bind", "idmap"]})
    b.save()
    r = rl("run", "-b", b.path, cid())
    assert r.returncode == 1
    i = len(b.config["mounts"]) - 1
    assert f"mounts[{i}]: idmapped mounts are not supported for rootless containers" in r.stderr


def test_rootless_start_path_imports_no_costly_module(rl, rbundle, cid):
    from test_imports import DENY
    b = rbundle(["true"])
    c = cid()
    argv = rl.user.argv() + ["/usr/bin/python3", "-IS", "-X", "importtime", rl.user.launcher,
                             "--root", rl.root, "run", "-b", b.path, c]
    rl.ids.add(c)
    with tempfile.TemporaryFile("w+") as err:
        r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=err, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        err.seek(0)
        text = err.read()
    assert r.returncode == 0, text[-500:]
    mods = {ln.rsplit("|", 1)[1].strip() for ln in text.splitlines()
            if ln.startswith("import time:") and "|" in ln}
    assert "conch.init" in mods and "conch.userns" in mods
    assert not mods & DENY, sorted(mods & DENY)
