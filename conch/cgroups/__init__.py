"""cgroups: one interface, one driver per hierarchy layout.

A Manager knows the container's directory in each hierarchy and can create
it, put a process in it, list its processes, freeze it, and remove it.
``linux.cgroupsPath`` is read as runc reads it for cgroupfs: an absolute path
is taken from the hierarchy's root, a relative one (and the default, the
container id) from the runtime's own cgroup in that hierarchy.

Layouts: v1 (one mount per controller under /sys/fs/cgroup, this VM, where
/sys/fs/cgroup/unified is a controller-less cgroup2 mount), and v2 (one
unified hierarchy at /sys/fs/cgroup). The hierarchies are read from
/proc/self/cgroup, one small file, rather than from mountinfo.
"""

import os

from ..errors import ConchError

CGROUP_ROOT = "/sys/fs/cgroup"


def _own_cgroups():
    """{hierarchy dir name: our own path in it} from /proc/self/cgroup."""
    out = {}
    with open("/proc/self/cgroup", "rb") as f:
        for line in f.read().decode().splitlines():
            _, ctrls, path = line.split(":", 2)
            if not ctrls:
                out[""] = path
            else:
                out[ctrls.replace("name=", "")] = path
    return out


def _check_path(cgpath):
    if ".." in cgpath.split("/"):
        raise ConchError(f"linux.cgroupsPath: must not contain '..': {cgpath!r}")


def _write(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data if isinstance(data, bytes) else str(data).encode())
    finally:
        os.close(fd)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


class Manager:
    """The container's cgroup directories: {hierarchy: absolute dir}."""

    version = 1

    def __init__(self, dirs):
        self.dirs = dirs

    # --- state.json round trip ---
    def to_state(self):
        return {"version": self.version, "dirs": self.dirs}

    @classmethod
    def from_state(cls, d):
        if not d:
            return None
        return (V2Manager if d.get("version") == 2 else V1Manager)(d.get("dirs", {}))

    def create(self):
        made = []
        try:
            for name, path in self.dirs.items():
                if not os.path.isdir(path):
                    os.makedirs(path, 0o755, exist_ok=True)
                    made.append(path)
                self._init_dir(name, path)
        except OSError as e:
            self.dirs = {k: v for k, v in self.dirs.items() if v in made}
            self.destroy()
            raise ConchError(f"cgroup {e.filename}: {e.strerror}") from None

    def _init_dir(self, name, path):
        pass

    # Files a single-threaded process writes "0" to, to move itself in, or None
    # when the parent must move it (by pid, through cgroup.procs).
    self_join_file = None

    def join(self, pid=0):
        for path in self.dirs.values():
            _write(os.path.join(path, "cgroup.procs"), pid)

    def self_join_files(self):
        return [os.path.join(p, self.self_join_file) for p in self.dirs.values()]

    def procs(self):
        pids = set()
        for path in self.dirs.values():
            try:
                data = _read(os.path.join(path, "cgroup.procs"))
            except OSError:
                continue
            pids.update(int(x) for x in data.split())
            break
        return sorted(pids)

    def destroy(self):
        """Remove the directories (deepest first); tolerate ones already gone."""
        import time
        left = []
        for path in self.dirs.values():
            for attempt in range(50):
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno == 16 and attempt < 49:  # EBUSY: exiting tasks still charged
                        time.sleep(0.002 * (attempt + 1))
                        continue
                    left.append(f"{path}: {e.strerror}")
                    break
        if left:
            raise ConchError("removing cgroup " + "; ".join(left))

    @property
    def freezer_files(self):
        return []

    def set_devices(self, rules):
        """Apply device rules (config.device_rules); on v2 this needs an eBPF
        program, which comes with the cgroups issue."""


def effective_device_rules(rules):
    """Apply device rules in order to a model of the v1 devices controller:
    (allow_all, {(type, major, minor): access}) where the entries are the
    exceptions to the default (denies when allow_all, allows otherwise)."""
    allow_all = True
    entries = {}
    for allow, typ, major, minor, access in rules:
        if typ == "a" and major < 0 and minor < 0 and set(access) >= set("rwm"):
            allow_all = allow
            entries = {}
            continue
        types = ("c", "b") if typ == "a" else (typ,)
        for t in types:
            key = (t, major, minor)
            have = set(entries.get(key, ""))
            if allow != allow_all:  # an exception to the default: add its access
                have |= set(access)
            else:  # back to the default: remove the access from the exception
                have -= set(access)
            if have:
                entries[key] = "".join(sorted(have))
            else:
                entries.pop(key, None)
    return allow_all, entries


class V1Manager(Manager):
    version = 1
    # A thread moving itself through v1 `tasks` skips cgroup_threadgroup_rwsem,
    # whose write side waits for an RCU grace period: 0.15 ms instead of 5-18 ms
    # through cgroup.procs. The init is single-threaded, so the thread is the process.
    self_join_file = "tasks"

    @classmethod
    def for_path(cls, cgpath, cid):
        own = _own_cgroups()
        dirs = {}
        for name, mypath in own.items():
            if not name:
                continue  # the hybrid cgroup2 mount has no controllers here
            mount = os.path.join(CGROUP_ROOT, name)
            if not os.path.isdir(mount):
                continue
            if cgpath.startswith("/"):
                dirs[name] = os.path.normpath(mount + cgpath)
            else:
                dirs[name] = os.path.normpath(os.path.join(mount + mypath, cgpath or cid))
        return cls(dirs)

    def _init_dir(self, name, path):
        if "cpuset" in name.split(","):
            # a new cpuset cgroup starts empty; a task cannot join until it has cpus and mems
            parent = os.path.dirname(path)
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not _read(os.path.join(path, f)).strip():
                    if not _read(os.path.join(parent, f)).strip():
                        self._init_dir(name, parent)
                    _write(os.path.join(path, f), _read(os.path.join(parent, f)).strip() or b"0")

    @property
    def freezer_files(self):
        p = self.dirs.get("freezer")
        return [os.path.join(p, "freezer.state")] if p else []

    def set_devices(self, rules):
        """v1 devices controller: the rules reduced to their effective list, then
        written as the kernel keeps them (`a` and exceptions), sorted, as runc does."""
        d = self.dirs.get("devices")
        if not d or rules is None:
            return
        allow_all, entries = effective_device_rules(rules)
        try:
            _write(os.path.join(d, "devices.allow" if allow_all else "devices.deny"), b"a")
            for (typ, major, minor), access in sorted(entries.items()):
                rule = (f"{typ} {'*' if major < 0 else major}:{'*' if minor < 0 else minor} "
                        f"{''.join(c for c in 'rwm' if c in access)}").encode()
                _write(os.path.join(d, "devices.deny" if allow_all else "devices.allow"), rule)
        except OSError as e:
            raise ConchError(f"linux.resources.devices: {e.filename}: {e.strerror}") from None


class V2Manager(Manager):
    version = 2

    @classmethod
    def for_path(cls, cgpath, cid):
        own = _own_cgroups().get("", "/")
        if cgpath.startswith("/"):
            path = os.path.normpath(CGROUP_ROOT + cgpath)
        else:
            path = os.path.normpath(os.path.join(CGROUP_ROOT + own, cgpath or cid))
        return cls({"": path})

    @property
    def freezer_files(self):
        return [os.path.join(self.dirs[""], "cgroup.freeze")]


def is_v2_host():
    """True when /sys/fs/cgroup itself is the unified hierarchy."""
    return os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))


def manager_for(cgpath, cid):
    _check_path(cgpath)
    if ":" in cgpath and not cgpath.startswith("/"):
        raise ConchError(f"linux.cgroupsPath: {cgpath!r} is a systemd path "
                         "(slice:prefix:name); it needs --systemd-cgroup, which is not supported yet")
    return (V2Manager if is_v2_host() else V1Manager).for_path(cgpath, cid)
