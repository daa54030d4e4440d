"""What the cgroup drivers share: the hierarchies, file access, the Manager interface.

A Manager knows the container's directory in each hierarchy it uses
(``dirs``: {hierarchy name: absolute directory}; "" is a cgroup2 hierarchy)
and can make them, put processes in them, list, freeze, limit, measure and
remove them. The drivers (v1.py, v2.py, systemd.py) fill in the parts that
differ. This module and the two cgroupfs drivers are on the start path: they
import nothing but os.
"""

from .. import _os as os

from ..errors import ConchError

CGROUP_ROOT = "/sys/fs/cgroup"
UNIFIED = CGROUP_ROOT + "/unified"  # the controller-less cgroup2 mount of a hybrid host

EBUSY = 16
ENOENT = 2
EINVAL = 22


def own_cgroups():
    """{hierarchy dir name: our own path in it} from /proc/self/cgroup ("" for cgroup2)."""
    out = {}
    with open("/proc/self/cgroup", "rb") as f:
        for line in f.read().decode().splitlines():
            _, ctrls, path = line.split(":", 2)
            if not ctrls:
                out[""] = path
            else:
                out[ctrls.replace("name=", "")] = path
    return out


def check_path(cgpath):
    if ".." in cgpath.split("/"):
        raise ConchError(f"linux.cgroupsPath: must not contain '..': {cgpath!r}")


def write(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, data if isinstance(data, bytes) else str(data).encode())
    finally:
        os.close(fd)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def read_str(path, default=None):
    try:
        with open(path, "rb") as f:
            return f.read().decode().strip()
    except OSError:
        if default is None:
            raise
        return default


def read_int(path, default=0):
    """An integer file; "max" (and a missing file) reads as `default`."""
    try:
        v = read_str(path)
    except OSError:
        return default
    if v == "max":
        return default
    try:
        return int(v)
    except ValueError:
        return default


def read_keyed(path):
    """A flat keyed file ("key value" lines, memory.stat, cpu.stat) as {key: int}."""
    out = {}
    try:
        data = read(path).decode()
    except OSError:
        return out
    for line in data.splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v)
        except ValueError:
            pass
    return out


def is_cgroup2(path):
    return os.path.exists(os.path.join(path, "cgroup.controllers"))


def is_v2_host():
    """True when /sys/fs/cgroup itself is the unified hierarchy."""
    return is_cgroup2(CGROUP_ROOT)


def remove_tree(path):
    """Remove a cgroup directory and the cgroups under it, deepest first.
    Tolerates directories already gone; retries EBUSY (exiting tasks still
    charged). Returns the error strings of what could not be removed."""
    left = []
    try:
        subs = [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return left
    except OSError as e:
        return [f"{path}: {e.strerror}"]
    for sub in subs:
        left += remove_tree(sub)
    for attempt in range(50):
        try:
            os.rmdir(path)
            break
        except FileNotFoundError:
            break
        except OSError as e:
            if e.errno == EBUSY and attempt < 49:
                import time  # noqa: PLC0415 - only when a cgroup is still busy
                time.sleep(0.002 * (attempt + 1))
                continue
            left.append(f"{path}: {e.strerror}")
            break
    return left


def tree_pids(path, out):
    """Add the pids of every cgroup at and under `path` (cgroup.procs) to `out`."""
    try:
        data = read(os.path.join(path, "cgroup.procs"))
    except OSError:
        return out
    out.update(int(x) for x in data.split())
    try:
        for e in os.scandir(path):
            if e.is_dir(follow_symlinks=False):
                tree_pids(e.path, out)
    except OSError:
        pass
    return out


class Manager:
    """The container's cgroup directories: {hierarchy: absolute dir}."""

    version = 1
    driver = "cgroupfs"

    # The file a single-threaded process writes "0" to, to move itself in (v1
    # `tasks`), or None when the parent moves it by pid through cgroup.procs.
    self_join_file = None

    def __init__(self, dirs):
        self.dirs = dirs

    # --- state.json round trip ---
    def to_state(self):
        return {"version": self.version, "dirs": self.dirs}

    @staticmethod
    def from_state(d):
        if not d:
            return None
        if d.get("driver") == "systemd":
            from .systemd import SystemdManager  # noqa: PLC0415
            return SystemdManager.from_state(d)
        if d.get("version") == 2:
            from .v2 import V2Manager  # noqa: PLC0415
            return V2Manager(d.get("dirs", {}))
        from .v1 import V1Manager  # noqa: PLC0415
        return V1Manager(d.get("dirs", {}))

    # --- making, joining, removing ---
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

    def self_join_files(self):
        """Files the init writes "0" to, first thing, to move itself in."""
        if not self.self_join_file:
            return []
        return [os.path.join(p, self.self_join_file) for n, p in self.dirs.items() if n]

    def parent_join_dirs(self):
        """Directories the parent moves the init into (by pid, through cgroup.procs)."""
        if self.self_join_file:
            return [p for n, p in self.dirs.items() if not n]
        return list(self.dirs.values())

    def join(self, pid=0, dirs=None):
        for path in (self.parent_join_dirs() if dirs is None else dirs):
            write(os.path.join(path, "cgroup.procs"), pid)

    def clone_into(self):
        """The cgroup2 directory a new init can be born in (clone3), or None."""
        return self.dirs.get("")

    def join_child(self, pid, skip=None):
        """The parent's part of putting a forked init in: what the init cannot do
        itself (and was not born into: `skip`)."""
        dirs = [d for d in self.parent_join_dirs() if d != skip]
        if dirs:
            self.join(pid, dirs)

    def procs(self):
        """Every process in the container's cgroup and its sub-cgroups."""
        pids = set()
        for name, path in self.dirs.items():
            if os.path.isdir(path):
                tree_pids(path, pids)
                if name or len(self.dirs) == 1:
                    break
        return sorted(pids)

    def destroy(self):
        """Remove the directories (and any sub-cgroups); tolerate ones already gone."""
        left = []
        for path in self.dirs.values():
            left += remove_tree(path)
        if left:
            raise ConchError("removing cgroup " + "; ".join(left))

    # --- freezer ---
    @property
    def freezer_files(self):
        return []

    def freeze(self):
        raise ConchError("the container has no freezer cgroup")

    def kill(self):
        """SIGKILL every process of the cgroup2 directory (a v2 host's, or the unified
        one of a hybrid host, where every process of the container also is) and of its
        sub-cgroups, by writing cgroup.kill, as runc 1.2 does. False when there is no
        such directory or the kernel has no cgroup.kill (before 5.14)."""
        path = self.dirs.get("")
        if not path:
            return False
        try:
            write(os.path.join(path, "cgroup.kill"), "1")
        except OSError as e:
            if e.errno == ENOENT:
                return False
            raise ConchError(f"{path}/cgroup.kill: {e.strerror}") from None
        return True

    def thaw(self):
        raise ConchError("the container has no freezer cgroup")

    # --- limits ---
    # True when the init must wait for the parent's cgroup-done (sync.py) even
    # without a cgroup namespace: its cgroup is made after the fork (systemd)
    child_waits = False

    def configure(self, rules, res):
        """Device rules and resources at create, before the fork (the systemd
        driver keeps them for join_child, once its unit exists)."""
        self.set_devices(rules)
        if res is not None and not res.empty():
            self.apply(res)

    def set_devices(self, rules):
        """Device rules (config.device_rules), in the driver's way."""

    def apply(self, res, update=False):
        """Write linux.resources (resources.Resources) to the cgroup files.
        Only what is set is written. What this call wrote is restored when a later
        write fails (with update, also files that existed before), so that
        nothing is half-applied. Drivers that write files give _apply."""
        self.check(res)
        self._prepare(res)
        j = Journal(update)
        try:
            self._apply(res, j, update)
        except BaseException:
            j.rollback()
            raise

    def check(self, res):
        """Refuse, naming the field, what this driver or host cannot apply."""

    def _prepare(self, res):
        """What must be done before the first write (cgroup2: enable controllers)."""

    def _apply(self, res, journal, update):
        """Write the files, each through journal.write."""

    # --- measuring ---
    def stats(self):
        return {}

    def oom_watch(self):
        """An object with `fd` (poll it for POLLIN/POLLPRI), `count()` (OOM kills
        so far) and `close()`; None when the driver cannot watch."""
        return None


class Journal:
    """Cgroup file writes that can be undone: each file's old content is read
    before its first write and written back, newest first, by rollback()."""

    def __init__(self, keep):
        self.keep = keep  # False on create: a failed create removes the whole cgroup
        self.done = []

    def write(self, path, value, field, old=None):
        if self.keep and old is None:
            try:
                old = read(path).strip()
            except OSError:
                old = None
        try:
            write(path, value)
        except OSError as e:
            raise WriteError(field, path, value, e) from None
        if self.keep and old is not None:
            self.done.append((path, old))

    def rollback(self):
        for path, old in reversed(self.done):
            try:
                write(path, old)
            except OSError:
                pass
        self.done = []


class WriteError(ConchError):
    """A cgroup file refused a value: names the config field, the file and the value."""

    def __init__(self, field, path, value, err):
        v = value.decode() if isinstance(value, bytes) else str(value)
        if err.errno == ENOENT:
            why = f"{os.path.basename(path)} does not exist (not supported by this kernel or controller)"
        else:
            why = f"writing {v!r} to {os.path.basename(path)}: {err.strerror}"
        super().__init__(f"{field}: {why}")
        self.field = field
        self.errno = err.errno


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
