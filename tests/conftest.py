"""Shared fixtures: busybox bundles, conch and runc runners, and leak checks.

Every test gets its own state root (under its tmp dir) and container ids with a
per-session prefix; after each test every container left in its roots is
deleted with --force, and the test fails if anything remains: a state dir, a
cgroup named after one of its containers, a mount under its tmp dir, a process.
"""

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SESSION = uuid.uuid4().hex[:6]
CGROUP_ROOT = "/sys/fs/cgroup"

sys.path.insert(0, REPO)


def pytest_configure(config):
    config.addinivalue_line("markers", "runc: compares with Debian's runc on the same bundle")


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("s")


@pytest.fixture(scope="session")
def conch_bin(session_dir):
    """The conch launcher under test: $CONCH_BIN, else one pointing at this checkout."""
    env = os.environ.get("CONCH_BIN")
    if env:
        return env
    # as tools/install.sh installs it: the package (here a link to this checkout's)
    # and its bundle, built for this session so that it is never stale
    lib = session_dir / "lib"
    lib.mkdir()
    (lib / "conch").symlink_to(os.path.join(REPO, "conch"))
    subprocess.run(["/usr/bin/python3", "-I", os.path.join(REPO, "conch", "_bundle.py"),
                    str(lib)], check=True, stdout=subprocess.DEVNULL)
    path = session_dir / "conch"
    with open(os.path.join(REPO, "tools", "conch-launcher.in")) as f:
        path.write_text(f.read().replace("@LIBDIR@", str(lib)))
    path.chmod(0o755)
    return str(path)


@pytest.fixture(scope="session")
def rootfs(session_dir):
    """A busybox rootfs built once per session (tools/mkrootfs.sh)."""
    path = session_dir / "rootfs"
    subprocess.run(["sh", os.path.join(REPO, "tools", "mkrootfs.sh"), str(path)], check=True)
    return str(path)


def default_config():
    sys.path.insert(0, REPO)
    from conch.cli.spec import default_spec
    return default_spec()


class Bundle:
    """A bundle directory whose config.json is written from `config` on save()."""

    def __init__(self, path, rootfs_path, args):
        self.path = str(path)
        self.config = default_config()
        self.config["root"]["path"] = rootfs_path
        self.config["process"]["terminal"] = False
        self.config["process"]["args"] = list(args)
        os.makedirs(self.path, exist_ok=True)
        self.save()

    @property
    def process(self):
        return self.config["process"]

    @property
    def linux(self):
        return self.config["linux"]

    def save(self):
        with open(os.path.join(self.path, "config.json"), "w") as f:
            json.dump(self.config, f, indent=2)
        return self

    def write_raw(self, text):
        with open(os.path.join(self.path, "config.json"), "w") as f:
            f.write(text)


@pytest.fixture
def make_bundle(tmp_path, rootfs):
    """make_bundle(args=[...], copy_rootfs=False) -> Bundle. The shared rootfs is
    read-only by default (root.readonly); copy_rootfs gives the test its own."""
    n = [0]

    def make(args=("true",), copy_rootfs=False, name=None):
        n[0] += 1
        path = tmp_path / (name or f"b{n[0]}")
        root = rootfs
        if copy_rootfs:
            root = str(path / "rootfs")
            shutil.copytree(rootfs, root, symlinks=True)
        return Bundle(path, root, args)

    return make


@pytest.fixture
def bundle(make_bundle):
    return make_bundle()


class Runtime:
    """Runs a runtime binary with its own --root; remembers ids to clean up."""

    def __init__(self, argv0, root, name):
        self.argv0 = argv0 if isinstance(argv0, list) else [argv0]
        self.root = str(root)
        self.name = name
        self.ids = set()

    def cmd(self, *args, root=True):
        return self.argv0 + (["--root", self.root] if root else []) + [str(a) for a in args]

    def __call__(self, *args, input=None, timeout=30, check=False, cwd=None, env=None,
                 stdin=None, pass_fds=(), root=True):
        for a in args:
            if isinstance(a, str) and a.startswith(f"t{SESSION}"):
                self.ids.add(a)
        kw = {}
        if stdin is not None:
            kw["stdin"] = stdin
        elif input is None:
            kw["stdin"] = subprocess.DEVNULL
        # files, not pipes: a created container's init holds its stdio open until it
        # runs, so reading a pipe to EOF would wait for the container
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            r = subprocess.run(self.cmd(*args, root=root), input=input, stdout=out, stderr=err,
                               text=True, timeout=timeout, cwd=cwd, env=env, pass_fds=pass_fds,
                               **kw)
            out.seek(0)
            err.seek(0)
            r.stdout, r.stderr = out.read(), err.read()
        if check and r.returncode != 0:
            raise AssertionError(f"{self.name} {' '.join(map(str, args))} failed "
                                 f"({r.returncode}): {r.stderr}")
        return r

    def popen(self, *args, **kw):
        for a in args:
            if isinstance(a, str) and a.startswith(f"t{SESSION}"):
                self.ids.add(a)
        return subprocess.Popen(self.cmd(*args), **kw)

    def state(self, cid):
        r = self("state", cid, check=True)
        return json.loads(r.stdout)

    def cleanup(self):
        for cid in sorted(self.ids):
            self("delete", "--force", cid, timeout=30)


def _ids(prefix_holder):
    n = [0]

    def new():
        n[0] += 1
        return f"t{SESSION}-{prefix_holder}-{n[0]}"
    return new


@pytest.fixture
def cid(request):
    """A fresh container id (unique per session and test); call cid() for more."""
    base = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")[:40]
    safe = "".join(c if c.isalnum() or c in "_+-." else "-" for c in base)
    return _ids(safe)


def _cmdlines():
    """(pid, cmdline bytes) of every process but this one."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                yield pid, f.read()
        except OSError:
            continue


def _leftovers(runtime, tmp_path):
    problems = []
    try:
        left = [n for n in os.listdir(runtime.root) if not n.startswith(".")]
    except FileNotFoundError:
        left = []
    if left:
        problems.append(f"{runtime.name} state dirs left: {left}")
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if str(tmp_path) in line]
    if mounts:
        problems.append(f"mounts left under the test dir: {mounts}")
    for cid in runtime.ids:
        for dirpath, dirnames, _ in os.walk(CGROUP_ROOT):
            if os.path.basename(dirpath) == cid:
                problems.append(f"cgroup left: {dirpath}")
                dirnames[:] = []
            # do not descend into other processes' deep trees more than needed
            if dirpath.count("/") > 8:
                dirnames[:] = []
    procs = [(pid, cmd[:120]) for pid, cmd in _cmdlines()
             if any(cid.encode() in cmd for cid in runtime.ids) or str(tmp_path).encode() in cmd]
    if procs:
        problems.append(f"processes left: {procs}")
    return problems


@pytest.fixture
def conch(conch_bin, tmp_path):
    rt = Runtime(conch_bin, tmp_path / "cs", "conch")
    yield rt
    rt.cleanup()
    problems = _leftovers(rt, tmp_path)
    assert not problems, "; ".join(problems)


@pytest.fixture
def runc(tmp_path):
    path = shutil.which("runc")
    if not path:
        pytest.skip("runc is not installed")
    rt = Runtime(path, tmp_path / "rs", "runc")
    yield rt
    rt.cleanup()
    problems = _leftovers(rt, tmp_path)
    assert not problems, "; ".join(problems)


def with_config(bundle, **changes):
    """A deep copy of the bundle's config with dotted-path changes applied."""
    cfg = copy.deepcopy(bundle.config)
    for dotted, value in changes.items():
        d = cfg
        parts = dotted.split(".")
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = value
    return cfg


def _session_leftovers(basetemp):
    """Anything of this session's containers left on the host: run after the suite.
    Only this session's: other pytest sessions may run beside it."""
    problems = []
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f
                  if f"t{SESSION}-" in line or line.split()[4].startswith(basetemp + "/")]
    if mounts:
        problems.append(f"mounts: {mounts[:5]}")
    for dirpath, dirnames, _ in os.walk(CGROUP_ROOT):
        for d in list(dirnames):
            if d.startswith(f"t{SESSION}-"):
                problems.append(f"cgroup: {os.path.join(dirpath, d)}")
                dirnames.remove(d)
        if dirpath.count("/") > 8:
            dirnames[:] = []
    # a container's init is a fork of the conch that made it: its cmdline has the id
    problems += [f"process {pid}: {cmd[:80]!r}" for pid, cmd in _cmdlines()
                 if f"t{SESSION}-".encode() in cmd]
    return problems


@pytest.fixture(scope="session", autouse=True)
def session_leak_check(tmp_path_factory):
    """After the whole suite: no mount, cgroup or process of this session's containers."""
    basetemp = str(tmp_path_factory.getbasetemp())
    yield
    problems = _session_leftovers(basetemp)
    if problems:
        pytest.fail("left behind by the suite: " + "; ".join(problems[:20]), pytrace=False)
