"""config.json (OCI runtime-spec 1.2, Linux) read into plain checked objects.

Everything the container init needs is decided here, before any fork: types
checked, names translated to numbers (capabilities, rlimits, mount flags,
namespace types), paths made absolute. A wrong field raises ConfigError with
the field's path, e.g. ``process.user.uid: expected integer, got "x"``.
The init then only acts; it never parses.
"""

from . import _os as os

from . import errors, jsonlite
from .errors import ConfigError, describe

# --- tables -----------------------------------------------------------------

CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
    "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
CAP_NUMBERS = {name: i for i, name in enumerate(CAPS)}

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

# namespace type -> (clone flag, /proc/PID/ns name)
NAMESPACES = {
    "pid": (0x20000000, "pid"),
    "network": (0x40000000, "net"),
    "mount": (0x00020000, "mnt"),
    "ipc": (0x08000000, "ipc"),
    "uts": (0x04000000, "uts"),
    "user": (0x10000000, "user"),
    "cgroup": (0x02000000, "cgroup"),
    "time": (0x00000080, "time"),
}

# mount option -> (clear?, MS_ flag)
MOUNT_FLAGS = {
    "async": (True, 0x10), "sync": (False, 0x10),
    "atime": (True, 0x400), "noatime": (False, 0x400),
    "defaults": (False, 0),
    "dev": (True, 0x4), "nodev": (False, 0x4),
    "diratime": (True, 0x800), "nodiratime": (False, 0x800),
    "dirsync": (False, 0x80),
    "exec": (True, 0x8), "noexec": (False, 0x8),
    "iversion": (False, 1 << 23), "noiversion": (True, 1 << 23),
    "lazytime": (False, 1 << 25), "nolazytime": (True, 1 << 25),
    "loud": (True, 0x8000), "silent": (False, 0x8000),
    "mand": (False, 0x40), "nomand": (True, 0x40),
    "relatime": (False, 1 << 21), "norelatime": (True, 1 << 21),
    "strictatime": (False, 1 << 24), "nostrictatime": (True, 1 << 24),
    "remount": (False, 0x20),
    "ro": (False, 0x1), "rw": (True, 0x1),
    "suid": (True, 0x2), "nosuid": (False, 0x2),
    "symfollow": (True, 0x100), "nosymfollow": (False, 0x100),
    "bind": (False, 0x1000), "rbind": (False, 0x1000 | 0x4000),
}
PROPAGATION = {
    "private": 1 << 18, "rprivate": (1 << 18) | 0x4000,
    "shared": 1 << 20, "rshared": (1 << 20) | 0x4000,
    "slave": 1 << 19, "rslave": (1 << 19) | 0x4000,
    "unbindable": 1 << 17, "runbindable": (1 << 17) | 0x4000,
}
# recursive mount attributes (mount_setattr with AT_RECURSIVE): option -> (clear?, attr)
RECURSIVE_ATTRS = {
    "rro": (False, 0x1), "rrw": (True, 0x1),
    "rnosuid": (False, 0x2), "rsuid": (True, 0x2),
    "rnodev": (False, 0x4), "rdev": (True, 0x4),
    "rnoexec": (False, 0x8), "rexec": (True, 0x8),
    "rnodiratime": (False, 0x80), "rdiratime": (True, 0x80),
    "rrelatime": (False, 0x0), "rnorelatime": (True, 0x0),
    "rnoatime": (False, 0x10), "ratime": (True, 0x10),
    "rstrictatime": (False, 0x20), "rnostrictatime": (True, 0x20),
    "rnosymfollow": (False, 0x200000), "rsymfollow": (True, 0x200000),
}
# options that are not mount flags: idmapped mounts (userns.py); tmpcopyup is Mount.copyup
EXTRA_OPTIONS = ("idmap", "ridmap")

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# process.ioPriority.class -> IOPRIO_CLASS_* (linux/ioprio.h)
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
# process.scheduler.policy -> SCHED_* and .flags -> SCHED_FLAG_* (linux/sched.h)
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
# linux.personality.domain -> PER_* (linux/personality.h)
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
MAX_CPU = 8191  # the kernel's largest NR_CPUS


# --- checked access ---------------------------------------------------------

def _expect(field, what, value):
    raise ConfigError(field, f"expected {what}, got {describe(value)}")


def _obj(d, key, field, required=False):
    v = d.get(key)
    if v is None:
        if required:
            raise ConfigError(field, "missing")
        return {}
    if not isinstance(v, dict):
        _expect(field, "object", v)
    return v


def _list(d, key, field, required=False):
    v = d.get(key)
    if v is None:
        if required:
            raise ConfigError(field, "missing")
        return []
    if not isinstance(v, list):
        _expect(field, "array", v)
    return v


def _str(d, key, field, required=False, default=""):
    v = d.get(key)
    if v is None:
        if required:
            raise ConfigError(field, "missing")
        return default
    if not isinstance(v, str):
        _expect(field, "string", v)
    return v


def _int(d, key, field, required=False, default=None, lo=None, hi=None):
    v = d.get(key)
    if v is None:
        if required:
            raise ConfigError(field, "missing")
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        _expect(field, "integer", v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ConfigError(field, f"{v} is out of range")
    return v


def _bool(d, key, field, default=False):
    v = d.get(key)
    if v is None:
        return default
    if not isinstance(v, bool):
        _expect(field, "boolean", v)
    return v


def _strlist(d, key, field, required=False):
    items = _list(d, key, field, required)
    for i, s in enumerate(items):
        if not isinstance(s, str):
            _expect(f"{field}[{i}]", "string", s)
    return items


U32 = 0xFFFFFFFF


# --- the model --------------------------------------------------------------

class Mount:
    __slots__ = ("destination", "type", "source", "options", "flags", "clear",
                 "propagation", "rec_set", "rec_clr", "data", "bind", "extra",
                 "uid_mappings", "gid_mappings", "copyup")

    def __repr__(self):
        return f"Mount({self.type} {self.source} -> {self.destination})"


class User:
    __slots__ = ("uid", "gid", "umask", "additional_gids", "username")


class Process:
    __slots__ = ("terminal", "console_size", "user", "args", "env", "cwd",
                 "caps", "rlimits", "no_new_privileges", "oom_score_adj",
                 "apparmor", "selinux_label", "command_line", "io_priority",
                 "scheduler", "exec_cpu_affinity", "unknown_caps")


class Hook:
    __slots__ = ("path", "args", "env", "timeout")


class Config:
    """A checked config.json. `raw` keeps the document for hooks and later issues."""

    __slots__ = ("raw", "bundle", "oci_version", "root", "root_readonly",
                 "hostname", "domainname", "mounts", "process", "hooks",
                 "annotations", "namespaces", "uid_mappings", "gid_mappings",
                 "devices", "cgroups_path", "resources", "device_rules", "rootfs_propagation",
                 "masked_paths", "readonly_paths", "sysctl", "seccomp",
                 "mount_label", "time_offsets", "personality")

    def ns_flags(self, with_path=False):
        flags = 0
        for typ, path in self.namespaces:
            if bool(path) == with_path:
                flags |= NAMESPACES[typ][0]
        return flags

    def has_ns(self, typ):
        return any(t == typ for t, _ in self.namespaces)

    def ns_path(self, typ):
        for t, p in self.namespaces:
            if t == typ:
                return p
        return None


def load(bundle):
    """Read bundle/config.json; raise ConfigError naming the field at fault."""
    bundle = os.path.abspath(bundle)
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError("", f"config.json: no such file in bundle {bundle}") from None
    except OSError as e:
        raise ConfigError("", f"config.json: {e.strerror}") from None
    try:
        raw = jsonlite.loads(data)
    except jsonlite.JSONError as e:
        raise ConfigError("config.json", f"invalid JSON: {e}") from None
    return parse(raw, bundle)


def parse(raw, bundle):
    if not isinstance(raw, dict):
        _expect("config.json", "object", raw)
    c = Config()
    c.raw = raw
    c.bundle = bundle
    c.oci_version = _str(raw, "ociVersion", "ociVersion", required=True)

    root = _obj(raw, "root", "root", required=True)
    rp = _str(root, "path", "root.path", required=True)
    if not rp:
        raise ConfigError("root.path", "must not be empty")
    c.root = os.path.normpath(os.path.join(bundle, rp))
    c.root_readonly = _bool(root, "readonly", "root.readonly")
    if not os.path.isdir(c.root):
        raise ConfigError("root.path", f"rootfs {c.root} is not a directory")

    c.hostname = _str(raw, "hostname", "hostname")
    c.domainname = _str(raw, "domainname", "domainname")
    c.annotations = _obj(raw, "annotations", "annotations")
    for k, v in c.annotations.items():
        if not isinstance(v, str):
            _expect(f"annotations.{k}", "string", v)

    c.mounts = [parse_mount(m, f"mounts[{i}]", bundle)
                for i, m in enumerate(_list(raw, "mounts", "mounts"))]
    c.process = parse_process(raw.get("process"), "process") if "process" in raw else None
    if c.process is not None and c.process.caps is None:
        c.process.caps = (0, 0, 0, 0, 0)  # as runc: no capabilities object, no capabilities
    c.hooks = parse_hooks(_obj(raw, "hooks", "hooks"))

    linux = _obj(raw, "linux", "linux")
    c.namespaces = []
    seen = set()
    for i, ns in enumerate(_list(linux, "namespaces", "linux.namespaces")):
        f = f"linux.namespaces[{i}]"
        if not isinstance(ns, dict):
            _expect(f, "object", ns)
        typ = _str(ns, "type", f + ".type", required=True)
        if typ not in NAMESPACES:
            raise ConfigError(f + ".type", f"unknown namespace type {describe(typ)}")
        if typ in seen:
            raise ConfigError(f + ".type", f"namespace {typ} given twice")
        seen.add(typ)
        p = _str(ns, "path", f + ".path")
        if p and not os.path.isabs(p):
            raise ConfigError(f + ".path", f"must be an absolute path, got {describe(p)}")
        c.namespaces.append((typ, p))
    c.uid_mappings = _idmaps(linux, "uidMappings", "linux.uidMappings")
    c.gid_mappings = _idmaps(linux, "gidMappings", "linux.gidMappings")
    if (c.uid_mappings or c.gid_mappings) and not c.has_ns("user"):
        raise ConfigError("linux.uidMappings", "set, but there is no user namespace")
    if c.has_ns("user") and not c.ns_path("user") and not (c.uid_mappings and c.gid_mappings):
        raise ConfigError("linux.uidMappings",
                          "a new user namespace needs uidMappings and gidMappings")
    if c.hostname and not c.has_ns("uts"):
        raise ConfigError("hostname", "set, but there is no new uts namespace")
    c.devices = [_device(d, f"linux.devices[{i}]")
                 for i, d in enumerate(_list(linux, "devices", "linux.devices"))]
    c.cgroups_path = _str(linux, "cgroupsPath", "linux.cgroupsPath")
    c.resources = _obj(linux, "resources", "linux.resources")
    c.device_rules = device_rules(c.resources, c.devices)
    prop = _str(linux, "rootfsPropagation", "linux.rootfsPropagation")
    if prop and prop not in PROPAGATION:
        raise ConfigError("linux.rootfsPropagation", f"unknown propagation {describe(prop)}")
    c.rootfs_propagation = PROPAGATION.get(prop, 0)
    c.masked_paths = _abspaths(linux, "maskedPaths", "linux.maskedPaths")
    c.readonly_paths = _abspaths(linux, "readonlyPaths", "linux.readonlyPaths")
    sysctl = _obj(linux, "sysctl", "linux.sysctl")
    c.sysctl = []
    for k, v in sysctl.items():
        if not isinstance(v, str):
            _expect(f"linux.sysctl.{k}", "string", v)
        if not k or "/" in k or ".." in k.split("."):
            raise ConfigError(f"linux.sysctl.{k}", "invalid sysctl name")
        c.sysctl.append((k, v))
    c.seccomp = None
    if linux.get("seccomp") is not None:
        from . import seccomp  # noqa: PLC0415 - only a config with linux.seccomp pays for it
        c.seccomp = seccomp.parse(linux["seccomp"])
    c.mount_label = _str(linux, "mountLabel", "linux.mountLabel")
    c.time_offsets = []
    for clock, off in _obj(linux, "timeOffsets", "linux.timeOffsets").items():
        f = f"linux.timeOffsets.{clock}"
        if clock not in ("monotonic", "boottime"):
            raise ConfigError(f, "unknown clock (monotonic or boottime)")
        if not isinstance(off, dict):
            _expect(f, "object", off)
        c.time_offsets.append((clock, _int(off, "secs", f + ".secs", default=0),
                               _int(off, "nanosecs", f + ".nanosecs", default=0, lo=0,
                                    hi=999999999)))
    if c.time_offsets and not (c.has_ns("time") and not c.ns_path("time")):
        raise ConfigError("linux.timeOffsets", "set, but there is no new time namespace")
    c.personality = None
    if linux.get("personality") is not None:
        c.personality = _personality(linux["personality"], "linux.personality")
    return c


# runc's default device allow-list: mknod of anything, and the devices every
# container gets (null, zero, full, random, urandom, tty, ptmx, tun, the ptys)
DEFAULT_DEVICE_RULES = (
    (True, "c", -1, -1, "m"), (True, "b", -1, -1, "m"),
    (True, "c", 1, 3, "rwm"), (True, "c", 1, 5, "rwm"), (True, "c", 1, 7, "rwm"),
    (True, "c", 1, 8, "rwm"), (True, "c", 1, 9, "rwm"), (True, "c", 5, 0, "rwm"),
    (True, "c", 5, 2, "rwm"), (True, "c", 10, 200, "rwm"), (True, "c", 136, -1, "rwm"),
)


def device_rules(resources, devices):
    """The device cgroup rules, in order: linux.resources.devices, then an allow
    for each of linux.devices, then runc's defaults. (allow, type, major, minor,
    access) with -1 for a wildcard. None when no rule is given at all."""
    given = _list(resources, "devices", "linux.resources.devices")
    rules = []
    for i, d in enumerate(given):
        f = f"linux.resources.devices[{i}]"
        if not isinstance(d, dict):
            _expect(f, "object", d)
        allow = d.get("allow")
        if not isinstance(allow, bool):
            _expect(f + ".allow", "boolean", allow)
        typ = _str(d, "type", f + ".type", default="a")
        if typ not in ("a", "c", "b"):
            raise ConfigError(f + ".type", f"unknown device type {describe(typ)} (a, c or b)")
        major = _int(d, "major", f + ".major", default=-1, lo=-1)
        minor = _int(d, "minor", f + ".minor", default=-1, lo=-1)
        access = _str(d, "access", f + ".access", default="rwm") or "rwm"
        if not set(access) <= set("rwm"):
            raise ConfigError(f + ".access", f"expected letters of rwm, got {describe(access)}")
        rules.append((allow, typ, major, minor, access))
    if not given:
        return None
    for path, typ, major, minor, _mode, _uid, _gid in devices:
        if typ in ("c", "b", "u"):
            rules.append((True, "c" if typ == "u" else typ, major, minor, "rwm"))
    rules.extend(DEFAULT_DEVICE_RULES)
    return rules


def _abspaths(d, key, field):
    paths = _strlist(d, key, field)
    for i, p in enumerate(paths):
        if not p.startswith("/"):
            raise ConfigError(f"{field}[{i}]", f"must be an absolute path, got {describe(p)}")
    return paths


def _idmaps(d, key, field):
    out = []
    for i, m in enumerate(_list(d, key, field)):
        f = f"{field}[{i}]"
        if not isinstance(m, dict):
            _expect(f, "object", m)
        out.append((_int(m, "containerID", f + ".containerID", True, lo=0, hi=U32),
                    _int(m, "hostID", f + ".hostID", True, lo=0, hi=U32),
                    _int(m, "size", f + ".size", True, lo=1, hi=U32)))
    return out


def _device(d, field):
    if not isinstance(d, dict):
        _expect(field, "object", d)
    path = _str(d, "path", field + ".path", required=True)
    if not path.startswith("/dev/") or ".." in path.split("/"):
        raise ConfigError(field + ".path", f"must be a path under /dev, got {describe(path)}")
    typ = _str(d, "type", field + ".type", required=True)
    if typ not in ("c", "b", "u", "p"):
        raise ConfigError(field + ".type", f"unknown device type {describe(typ)}")
    major = _int(d, "major", field + ".major", required=typ != "p", default=0, lo=0)
    minor = _int(d, "minor", field + ".minor", required=typ != "p", default=0, lo=0)
    mode = _int(d, "fileMode", field + ".fileMode", default=0o666, lo=0, hi=0o7777)
    uid = _int(d, "uid", field + ".uid", default=0, lo=0, hi=U32)
    gid = _int(d, "gid", field + ".gid", default=0, lo=0, hi=U32)
    return (path, typ, major, minor, mode, uid, gid)


def parse_mount(m, field, bundle):
    if not isinstance(m, dict):
        _expect(field, "object", m)
    mt = Mount()
    dest = _str(m, "destination", field + ".destination", required=True)
    if not dest.startswith("/"):
        # runc accepts relative destinations as relative to /; so do we
        dest = "/" + dest
    if ".." in dest.split("/"):
        raise ConfigError(field + ".destination", f"must not contain '..': {describe(dest)}")
    mt.destination = os.path.normpath(dest)
    mt.type = _str(m, "type", field + ".type")
    src = _str(m, "source", field + ".source")
    mt.options = _strlist(m, "options", field + ".options")
    mt.flags = 0
    mt.clear = 0
    mt.propagation = []
    mt.rec_set = 0
    mt.rec_clr = 0
    mt.extra = []
    mt.copyup = False  # tmpcopyup: only tmpfs mounts act on it, others ignore it (as runc)
    data = []
    for opt in mt.options:
        if opt in MOUNT_FLAGS:
            clear, flag = MOUNT_FLAGS[opt]
            if clear:
                mt.flags &= ~flag
                mt.clear |= flag
            else:
                mt.flags |= flag
                mt.clear &= ~flag
        elif opt in PROPAGATION:
            mt.propagation.append(PROPAGATION[opt])
        elif opt in RECURSIVE_ATTRS:
            clear, attr = RECURSIVE_ATTRS[opt]
            if opt in ("ratime", "rnorelatime", "rnostrictatime") or (clear and attr == 0):
                mt.rec_clr |= 0x70
            elif attr in (0x0, 0x10, 0x20):  # an atime mode replaces the others
                mt.rec_clr |= 0x70
                mt.rec_set |= attr
            elif clear:
                mt.rec_clr |= attr
            else:
                mt.rec_set |= attr
        elif opt == "tmpcopyup":
            mt.copyup = True
        elif opt in EXTRA_OPTIONS:
            mt.extra.append(opt)
        else:
            data.append(opt)
    mt.data = ",".join(data)
    mt.bind = bool(mt.flags & 0x1000) or mt.type == "bind"
    if mt.bind:
        mt.flags |= 0x1000
        if not src:
            raise ConfigError(field + ".source", "a bind mount needs a source")
        src = os.path.join(bundle, src)
    elif not mt.type:
        raise ConfigError(field + ".type", "missing (only bind mounts may omit it)")
    mt.source = src
    mt.uid_mappings = _idmaps(m, "uidMappings", field + ".uidMappings")
    mt.gid_mappings = _idmaps(m, "gidMappings", field + ".gidMappings")
    return mt


def parse_process(p, field="process"):
    if not isinstance(p, dict):
        _expect(field, "object", p)
    pr = Process()
    pr.terminal = _bool(p, "terminal", field + ".terminal")
    cs = _obj(p, "consoleSize", field + ".consoleSize")
    pr.console_size = ((_int(cs, "height", field + ".consoleSize.height", True, lo=0, hi=0xFFFF),
                        _int(cs, "width", field + ".consoleSize.width", True, lo=0, hi=0xFFFF))
                       if cs else None)
    u = _obj(p, "user", field + ".user")
    user = User()
    user.uid = _int(u, "uid", field + ".user.uid", default=0, lo=0, hi=U32)
    user.gid = _int(u, "gid", field + ".user.gid", default=0, lo=0, hi=U32)
    user.umask = _int(u, "umask", field + ".user.umask", lo=0, hi=0o777)
    gids = _list(u, "additionalGids", field + ".user.additionalGids")
    for i, g in enumerate(gids):
        if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g <= U32:
            _expect(f"{field}.user.additionalGids[{i}]", "integer", g)
    user.additional_gids = gids
    user.username = _str(u, "username", field + ".user.username")
    pr.user = user
    pr.args = _strlist(p, "args", field + ".args")
    pr.command_line = _str(p, "commandLine", field + ".commandLine")
    if not pr.args:
        raise ConfigError(field + ".args", "must contain at least one element")
    if not pr.args[0]:
        raise ConfigError(field + ".args[0]", "must not be empty")
    pr.env = _strlist(p, "env", field + ".env")
    pr.cwd = _str(p, "cwd", field + ".cwd", required=True)
    if not pr.cwd.startswith("/"):
        raise ConfigError(field + ".cwd", f"must be an absolute path, got {describe(pr.cwd)}")
    caps = p.get("capabilities")
    unknown = set()
    if caps is None:
        pr.caps = None
    else:
        if not isinstance(caps, dict):
            _expect(field + ".capabilities", "object", caps)
        pr.caps = tuple(cap_mask(caps, s, f"{field}.capabilities.{s}", unknown)
                        for s in ("bounding", "effective", "permitted", "inheritable", "ambient"))
    pr.unknown_caps = sorted(unknown)  # as runc: ignored, with a warning (warn_unknown_caps)
    pr.rlimits = []
    seen = set()
    for i, r in enumerate(_list(p, "rlimits", field + ".rlimits")):
        f = f"{field}.rlimits[{i}]"
        if not isinstance(r, dict):
            _expect(f, "object", r)
        typ = _str(r, "type", f + ".type", required=True)
        if typ not in RLIMITS:
            raise ConfigError(f + ".type", f"unknown rlimit {describe(typ)}")
        if typ in seen:
            raise ConfigError(f + ".type", f"{typ} given twice")
        seen.add(typ)
        hard = _int(r, "hard", f + ".hard", required=True, lo=0, hi=0xFFFFFFFFFFFFFFFF)
        soft = _int(r, "soft", f + ".soft", required=True, lo=0, hi=0xFFFFFFFFFFFFFFFF)
        pr.rlimits.append((RLIMITS[typ], _rlim(soft), _rlim(hard)))
    pr.no_new_privileges = _bool(p, "noNewPrivileges", field + ".noNewPrivileges")
    pr.oom_score_adj = _int(p, "oomScoreAdj", field + ".oomScoreAdj", lo=-1000, hi=1000)
    pr.apparmor = _str(p, "apparmorProfile", field + ".apparmorProfile")
    pr.selinux_label = _str(p, "selinuxLabel", field + ".selinuxLabel")
    pr.io_priority = pr.scheduler = pr.exec_cpu_affinity = None
    if p.get("ioPriority") is not None:
        pr.io_priority = _io_priority(p["ioPriority"], field + ".ioPriority")
    if p.get("scheduler") is not None:
        pr.scheduler = _scheduler(p["scheduler"], field + ".scheduler")
    if p.get("execCPUAffinity") is not None:
        pr.exec_cpu_affinity = _cpu_affinity(p["execCPUAffinity"], field + ".execCPUAffinity")
    return pr


def _personality(d, field):
    """linux.personality -> (PER_* domain, its name). As runc: flags are ignored with a
    warning (the spec defines none)."""
    if not isinstance(d, dict):
        _expect(field, "object", d)
    domain = _str(d, "domain", field + ".domain", required=True)
    if domain not in PERSONALITY_DOMAINS:
        raise ConfigError(field + ".domain", f"unknown domain {describe(domain)} (LINUX or LINUX32)")
    flags = _strlist(d, "flags", field + ".flags")
    if flags:
        errors.warn(f"{field}.flags {', '.join(map(describe, flags))} ignored: "
                    "no personality flag is supported")
    return PERSONALITY_DOMAINS[domain], domain


def _io_priority(d, field):
    """process.ioPriority -> (class name, level, the ioprio_set value)."""
    if not isinstance(d, dict):
        _expect(field, "object", d)
    cls = _str(d, "class", field + ".class", required=True)
    if cls not in IOPRIO_CLASSES:
        raise ConfigError(field + ".class", f"unknown class {describe(cls)} "
                          "(IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE)")
    level = _int(d, "priority", field + ".priority", default=0, lo=0, hi=7)
    return cls, level, IOPRIO_CLASSES[cls] << 13 | level


def _scheduler(d, field):
    """process.scheduler -> (policy name, policy, flags, nice, priority, runtime, deadline,
    period) for sched_setattr(2), with runc's rules (a priority only for SCHED_FIFO and
    SCHED_RR, runtime/deadline/period only for SCHED_DEADLINE, nice in -20..19 for
    SCHED_OTHER and SCHED_BATCH) and the kernel's own limits, so that a value the kernel
    would refuse fails here, before anything exists."""
    if not isinstance(d, dict):
        _expect(field, "object", d)
    name = _str(d, "policy", field + ".policy", required=True)
    if name not in SCHED_POLICIES:
        raise ConfigError(field + ".policy", f"unknown policy {describe(name)}")
    if name == "SCHED_ISO":
        raise ConfigError(field + ".policy", "SCHED_ISO is not implemented by Linux")
    flags = 0
    for i, f in enumerate(_strlist(d, "flags", field + ".flags")):
        if f not in SCHED_FLAGS:
            raise ConfigError(f"{field}.flags[{i}]", f"unknown flag {describe(f)}")
        flags |= SCHED_FLAGS[f]
    nice = _int(d, "nice", field + ".nice", default=0, lo=-0x80000000, hi=0x7FFFFFFF)
    if name in ("SCHED_OTHER", "SCHED_BATCH") and not -20 <= nice <= 19:
        raise ConfigError(field + ".nice", f"{nice} is out of range (-20 to 19)")
    prio = _int(d, "priority", field + ".priority", default=0, lo=-0x80000000, hi=0x7FFFFFFF)
    rt = name in ("SCHED_FIFO", "SCHED_RR")
    if prio and not rt:
        raise ConfigError(field + ".priority", "can only be set for SCHED_FIFO or SCHED_RR")
    keep = flags & SCHED_FLAGS["SCHED_FLAG_KEEP_PARAMS"]
    if rt and not keep and not 1 <= prio <= 99:
        raise ConfigError(field + ".priority", f"{prio} is out of range for {name} (1 to 99)")
    dl = [_int(d, k, f"{field}.{k}", default=0, lo=0, hi=(1 << 63) - 1)
          for k in ("runtime", "deadline", "period")]
    if name != "SCHED_DEADLINE":
        for k, v in zip(("runtime", "deadline", "period"), dl):
            if v:
                raise ConfigError(f"{field}.{k}", "can only be set for SCHED_DEADLINE")
    elif not keep:
        runtime, deadline, period = dl
        if runtime < 1024:
            raise ConfigError(field + ".runtime", f"{runtime} is out of range for "
                              "SCHED_DEADLINE (at least 1024 ns)")
        if deadline < runtime:
            raise ConfigError(field + ".deadline", f"{deadline} is less than runtime {runtime}")
        if period and period < deadline:
            raise ConfigError(field + ".period", f"{period} is less than deadline {deadline}")
    return (name, SCHED_POLICIES[name], flags, nice, prio, *dl)


def _cpu_affinity(d, field):
    """process.execCPUAffinity -> (initial CPUs, final CPUs, initial text, final text),
    each set None when not given (or empty)."""
    if not isinstance(d, dict):
        _expect(field, "object", d)
    initial = _str(d, "initial", field + ".initial")
    final = _str(d, "final", field + ".final")
    if not initial and not final:
        return None
    return (cpu_list(initial, field + ".initial"), cpu_list(final, field + ".final"),
            initial, final)


def cpu_list(text, field):
    """A CPU list as the kernel writes them ("0-3,7") -> a set of CPU numbers; None
    for "". Only digits, commas and one dash per range."""
    if not text:
        return None
    cpus = set()
    for part in text.split(","):
        lo, dash, hi = part.partition("-")
        if not (lo.isdigit() and lo.isascii() and (not dash or (hi.isdigit() and hi.isascii()))):
            raise ConfigError(field, f"invalid CPU list {describe(text)} "
                              '(CPU numbers and ranges, comma-separated: "0-3,7")')
        a = int(lo)
        b = int(hi) if dash else a
        if a > b:
            raise ConfigError(field, f"invalid range {describe(part)} in {describe(text)}")
        if b > MAX_CPU:
            raise ConfigError(field, f"CPU {b} is out of range (0 to {MAX_CPU})")
        cpus.update(range(a, b + 1))
    return cpus


def _rlim(v):
    # RLIM_INFINITY is ~0 in the spec's uint64; Python's resource module wants -1
    return -1 if v >= 0xFFFFFFFFFFFFFFFF else v


def cap_mask(caps, key, field, unknown=None):
    """The capability names of caps[key] as a mask. The names are runc's, exactly
    ("CAP_NET_RAW"; not "NET_RAW" nor "cap_net_raw"). An unknown name is added to
    the set `unknown` (runc ignores it, and warns), or refused without one."""
    mask = 0
    for i, name in enumerate(_strlist(caps, key, field)):
        n = CAP_NUMBERS.get(name)
        if n is None:
            if unknown is None:
                raise ConfigError(f"{field}[{i}]", f"unknown capability {describe(name)}")
            unknown.add(name)
            continue
        mask |= 1 << n
    return mask


def warn_unknown_caps(proc):
    """runc's warning for the capability names it ignored, when it applies the process's."""
    if proc.unknown_caps:
        from . import errors  # noqa: PLC0415
        errors.warn(f"ignoring unknown or unavailable capabilities: [{' '.join(proc.unknown_caps)}]")


HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer",
              "poststart", "poststop")


def parse_hooks(h):
    out = {}
    for kind in HOOK_KINDS:
        hooks = []
        for i, d in enumerate(_list(h, kind, f"hooks.{kind}")):
            f = f"hooks.{kind}[{i}]"
            if not isinstance(d, dict):
                _expect(f, "object", d)
            hk = Hook()
            hk.path = _str(d, "path", f + ".path", required=True)
            if not hk.path.startswith("/"):
                raise ConfigError(f + ".path", f"must be an absolute path, got {describe(hk.path)}")
            hk.args = _strlist(d, "args", f + ".args") or [hk.path]
            hk.env = _strlist(d, "env", f + ".env")
            hk.timeout = _int(d, "timeout", f + ".timeout", lo=1)
            hooks.append(hk)
        if hooks:
            out[kind] = hooks
    return out
