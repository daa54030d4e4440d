"""Thin wrappers over the Linux system calls that Python's os module lacks.

Every wrapper raises SyscallError, an OSError that names the call and the
path it acted on, so that a failure deep in container set-up reads as
``mount /proc (proc): Operation not permitted`` and not as a bare errno.

This module is on the start path of every container. `import ctypes` costs
5.6 ms here (its __init__ builds dozens of types); this module talks to the
C module `_ctypes` directly (0.4 ms) with the four types it needs, and finds
functions in the C library already mapped into the process (dlopen(NULL): no
file is loaded, no ctypes.util.find_library, which would run ldconfig).
Structures are passed as bytes (the kernel only reads them) and the one
output buffer is a char array.
"""

import _ctypes
from . import _os as os


# A ctypes type is a class made by a metaclass: 0.15M instructions each. The start
# path needs two: c_long (the arguments of the variadic syscall(2) and of
# unsigned-long parameters: a bare Python int is passed as a 32-bit int) and one
# function-pointer type. Its functions return int (ctypes' default without
# _restype_), also syscall(2), whose long result conch only reads as an fd, a pid,
# 0 or -1. Buffers are arrays of c_long (make them with char_array). The other
# types (c_int, c_uint, c_char: libseccomp's bindings use them) are made on first use.

class c_long(_ctypes._SimpleCData):
    _type_ = "l"


class _Func(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO


_Libc = type(os)("conch.syscalls.libc")  # anything with a _handle will do
_Libc._handle = _ctypes.dlopen(None, 2)  # RTLD_NOW; the process's own symbols


def _libc_lookup(name):
    """libc functions, looked up on first use (a module object's __getattr__)."""
    f = _Func((name, _Libc))
    setattr(_libc, name, f)
    return f


_libc = type(os)("conch.syscalls.functions")
_libc.__getattr__ = _libc_lookup

_SIMPLE = {"c_int": "i", "c_uint": "I", "c_char": "c"}


def __getattr__(name):
    """The ctypes types few paths need, made on first use and kept."""
    code = _SIMPLE.get(name)
    if code is None:
        raise AttributeError(f"module 'conch.syscalls' has no attribute '{name}'")
    t = type(name, (_ctypes._SimpleCData,), {"_type_": code})
    globals()[name] = t
    return t


_arrays = {}


def char_array(init):
    """A C buffer holding `init` (bytes) or `init` zero bytes, as an array of c_long
    (its size rounded up to 8 bytes; bytes(buffer) gives them back); keep it alive
    while the kernel may use its address (addressof)."""
    n = init if isinstance(init, int) else len(init)
    words = max((n + 7) // 8, 1)
    cls = _arrays.get(words)
    if cls is None:
        cls = _arrays[words] = type("_Longs", (_ctypes.Array,),
                                    {"_type_": c_long, "_length_": words})
    if isinstance(init, int):
        return cls()
    return cls.from_buffer_copy(init + bytes(words * 8 - n))


get_errno = _ctypes.get_errno

# --- constants (include/uapi/linux/*.h) ------------------------------------

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# openat2 resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

O_PATH = 0o10000000

# mount_setattr
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

# open_tree, move_mount (idmapped mounts)
AT_EMPTY_PATH = 0x1000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40

PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572
TMPFS_MAGIC = 0x01021994
DEVPTS_SUPER_MAGIC = 0x1CD1

TIOCSCTTY = 0x540E
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441
TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414

# syscall numbers that glibc 2.36 has no wrapper for
_machine = os.uname().machine
if _machine == "x86_64":
    _NR = {"pivot_root": 155, "pidfd_send_signal": 424, "open_tree": 428,
           "move_mount": 429, "close_range": 436, "openat2": 437,
           "mount_setattr": 442, "keyctl": 250}
elif _machine == "aarch64":
    _NR = {"pivot_root": 41, "pidfd_send_signal": 424, "open_tree": 428,
           "move_mount": 429, "close_range": 436, "openat2": 437,
           "mount_setattr": 442, "keyctl": 219}
else:  # pragma: no cover - other architectures are not supported yet
    raise ImportError(f"conch does not support {_machine} yet")


_NR["seccomp"] = 317 if _machine == "x86_64" else 277
_NR.update({"sched_setattr": 314, "ioprio_set": 251, "ioprio_get": 252}
           if _machine == "x86_64" else {"sched_setattr": 274, "ioprio_set": 30, "ioprio_get": 31})


class SyscallError(OSError):
    """An OSError that names the system call and what it acted on."""

    def __init__(self, errno_, call, what=""):
        super().__init__(errno_, os.strerror(errno_))
        self.call = call
        self.what = what

    def __str__(self):
        where = f" {self.what}" if self.what else ""
        # lower-case as Go (runc) writes errno texts: engines match "no such file or directory"
        return f"{self.call}{where}: {self.strerror[:1].lower()}{self.strerror[1:]}"


def _check(ret, call, what=""):
    if ret < 0:
        raise SyscallError(get_errno(), call, what)
    return ret


def oserror(err, call, what=""):
    """Re-raise an OSError from the os module as a SyscallError."""
    return SyscallError(err.errno or 0, call, what or (err.filename or ""))


def _b(s):
    return s if s is None or isinstance(s, bytes) else os.fsencode(s)


def mount(source, target, fstype, flags=0, data=None, what=None):
    """mount(2). `what` names the target in errors when target is /proc/self/fd/N."""
    ret = _libc.mount(_b(source), _b(target), _b(fstype), c_long(flags), _b(data))
    if ret < 0:
        kind = f" ({fstype})" if fstype else ""
        raise SyscallError(get_errno(), "mount", f"{what or target}{kind}")


def umount2(target, flags=0):
    _check(_libc.umount2(_b(target), flags), "umount2", target)


def unshare(flags):
    _check(_libc.unshare(flags), "unshare", hex(flags))


def setns(fd, nstype=0, what=""):
    _check(_libc.setns(fd, nstype), "setns", what)


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    return _check(_libc.prctl(option, c_long(arg2), c_long(arg3), c_long(arg4), c_long(arg5)),
                  "prctl", str(option))


# --- scheduling: process.scheduler, ioPriority, execCPUAffinity; linux.personality ----

IOPRIO_WHO_PROCESS = 1


def sched_setattr(policy, flags=0, nice=0, priority=0, runtime=0, deadline=0, period=0,
                  what=""):
    """sched_setattr(2) of the calling thread, with a struct sched_attr of the first
    version (48 bytes, as runc passes it: no utilization clamps)."""
    attr = (b"\x30\0\0\0" + policy.to_bytes(4, "little") + flags.to_bytes(8, "little")
            + nice.to_bytes(4, "little", signed=True) + priority.to_bytes(4, "little", signed=True)
            + _u64s(runtime, deadline, period))
    _check(_libc.syscall(c_long(_NR["sched_setattr"]), 0, attr, 0), "sched_setattr", what)


def ioprio_set(ioprio, what=""):
    """ioprio_set(IOPRIO_WHO_PROCESS, 0, ioprio): the calling thread's I/O priority."""
    _check(_libc.syscall(c_long(_NR["ioprio_set"]), IOPRIO_WHO_PROCESS, 0, ioprio),
           "ioprio_set", what)


def ioprio_get(pid):
    """ioprio_get(IOPRIO_WHO_PROCESS, pid): (class, level)."""
    v = _check(_libc.syscall(c_long(_NR["ioprio_get"]), IOPRIO_WHO_PROCESS, pid), "ioprio_get",
               str(pid))
    return v >> 13, v & 0x1FFF


def personality(persona, what=""):
    """personality(2); returns the previous persona."""
    return _check(_libc.personality(c_long(persona)), "personality", what)


def sched_setaffinity(cpus, what=""):
    """The calling thread's CPU affinity (a set of CPU numbers)."""
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as e:
        raise SyscallError(e.errno or 0, "sched_setaffinity", what) from None


def join_session_keyring(name):
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING): a new session keyring, not the caller's."""
    return _check(_libc.syscall(c_long(_NR["keyctl"]), 1, _b(name)), "keyctl", name)


def write_time_offsets(offsets):
    """Set a new time namespace's clock offsets (before its first process is forked)."""
    if not offsets:
        return
    data = "".join(f"{clock} {secs} {ns}\n" for clock, secs, ns in offsets).encode()
    fd = os.open("/proc/self/timens_offsets", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    except OSError as e:
        raise SyscallError(e.errno, "write", "/proc/self/timens_offsets") from None
    finally:
        os.close(fd)


def set_name(name):
    """prctl(PR_SET_NAME): the comm that ps shows, at most 15 bytes."""
    _check(_libc.prctl(PR_SET_NAME, name[:15] + b"\0", 0, 0, 0), "prctl", "PR_SET_NAME")


def pivot_root(new_root, put_old):
    _check(_libc.syscall(c_long(_NR["pivot_root"]), _b(new_root), _b(put_old)),
           "pivot_root", new_root)


def setdomainname(name):
    b = _b(name)
    _check(_libc.setdomainname(b, len(b)), "setdomainname", name)


def close_range(first, last=0xFFFFFFFF, flags=0):
    _check(_libc.syscall(c_long(_NR["close_range"]), c_long(first), c_long(last),
                         c_long(flags)), "close_range")


CLOSE_RANGE_CLOEXEC = 4


def pidfd_send_signal(pidfd, sig):
    _check(_libc.syscall(c_long(_NR["pidfd_send_signal"]), pidfd, sig, None, 0),
           "pidfd_send_signal", str(sig))


def _u64s(*vals):
    return b"".join(v.to_bytes(8, "little") for v in vals)


# --- fcntl, ioctl and rlimits without the fcntl and resource modules (each a dlopen) ---

F_DUPFD_CLOEXEC = 1030
F_ADD_SEALS = 1033


def fcntl(fd, cmd, arg=0):
    """fcntl(2) with an integer argument."""
    return _check(_libc.fcntl(fd, cmd, c_long(arg)), "fcntl", f"fd {fd}")


def ioctl(fd, request, arg=0):
    """ioctl(2), as fcntl.ioctl: an int argument is passed as is and the result
    returned; a bytes argument is copied to a buffer whose content is returned; a
    bytearray is updated in place (and 0 returned)."""
    if isinstance(arg, int):
        return _check(_libc.ioctl(fd, c_long(request), c_long(arg)), "ioctl", f"fd {fd}")
    buf = char_array(bytes(arg))
    _check(_libc.ioctl(fd, c_long(request), buf), "ioctl", f"fd {fd}")
    out = bytes(buf)[:len(arg)]
    if isinstance(arg, bytearray):
        arg[:] = out
        return 0
    return out


RLIM_INFINITY = (1 << 64) - 1


def setrlimit(resource, soft, hard):
    """prlimit(0, resource, {soft, hard}); values above 2^64-1 or below 0 mean infinity."""
    new = _u64s(*(v if 0 <= v <= RLIM_INFINITY else RLIM_INFINITY for v in (soft, hard)))
    _check(_libc.prlimit(0, resource, new, None), "setrlimit", str(resource))


def getrlimit(resource):
    """(soft, hard) of this process's rlimit."""
    old = char_array(16)
    _check(_libc.prlimit(0, resource, None, old), "getrlimit", str(resource))
    return old[0] & RLIM_INFINITY, old[1] & RLIM_INFINITY


def openat2(dirfd, path, flags, mode=0, resolve=0):
    how = _u64s(flags | os.O_CLOEXEC, mode, resolve)  # struct open_how
    for _ in range(64):
        ret = _libc.syscall(c_long(_NR["openat2"]), dirfd, _b(path), how, c_long(len(how)))
        # EAGAIN: a rename or mount raced a RESOLVE_IN_ROOT/BENEATH lookup; try again
        if ret >= 0 or get_errno() != 11:
            break
    return _check(ret, "openat2", path)


def mount_setattr(dirfd, path, flags, attr_set, attr_clr=0, propagation=0,
                  userns_fd=0, what=None):
    attr = _u64s(attr_set, attr_clr, propagation, userns_fd)  # struct mount_attr
    ret = _libc.syscall(c_long(_NR["mount_setattr"]), dirfd, _b(path), c_long(flags),
                        attr, c_long(len(attr)))
    _check(ret, "mount_setattr", what or path)


def open_tree(dirfd, path, flags, what=None):
    """open_tree(2): with OPEN_TREE_CLONE, an fd of a detached copy of the mount at path."""
    ret = _libc.syscall(c_long(_NR["open_tree"]), dirfd, _b(path), c_long(flags))
    return _check(ret, "open_tree", what or path)


def move_mount(from_fd, to_fd, what=None):
    """move_mount(2) of the tree behind from_fd onto the directory behind to_fd."""
    ret = _libc.syscall(c_long(_NR["move_mount"]), from_fd, b"", to_fd, b"",
                        c_long(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH))
    _check(ret, "move_mount", what or "")


def fstatfs_type(fd):
    """The f_type (filesystem magic) of an open fd."""
    buf = char_array(128)  # struct statfs: f_type first
    _check(_libc.fstatfs(fd, buf), "fstatfs", f"fd {fd}")
    return buf[0]


def sigset(signals):
    """A kernel sigset_t (128 bytes) with the given signals."""
    mask = 0
    for sig in signals:
        mask |= 1 << (sig - 1)
    return mask.to_bytes(128, "little")


SFD_CLOEXEC = 0o2000000


def signalfd(signals):
    """A signalfd for `signals` (which must be blocked by the caller)."""
    return _check(_libc.signalfd(-1, sigset(signals), SFD_CLOEXEC), "signalfd")


# --- capabilities ------------------------------------------------------------

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective, permitted, inheritable):
    """Set the calling thread's capability sets from 64-bit masks."""
    hdr = _LINUX_CAPABILITY_VERSION_3.to_bytes(4, "little") + b"\0\0\0\0"
    data = b"".join((m >> (32 * i) & 0xFFFFFFFF).to_bytes(4, "little")
                    for i in range(2) for m in (effective, permitted, inheritable))
    _check(_libc.capset(hdr, data), "capset")


_last_cap = []


def last_cap():
    """The kernel's highest capability number, asked of the kernel (PR_CAPBSET_READ
    fails with EINVAL above it), never read from /proc/sys/kernel/cap_last_cap:
    the init calls this after pivot_root, where /proc is whatever the container's
    rootfs has (a fake file could keep capabilities in the bounding set)."""
    if not _last_cap:
        def known(n):
            return _libc.prctl(PR_CAPBSET_READ, c_long(n), c_long(0), c_long(0), c_long(0)) >= 0
        n = 40
        while known(n + 1):
            n += 1
        while n > 0 and not known(n):
            n -= 1
        _last_cap.append(n)
    return _last_cap[0]


# --- seccomp -------------------------------------------------------------------

SECCOMP_SET_MODE_FILTER = 1


def seccomp_filter(bpf, flags=0):
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog) for a classic BPF program
    (8 bytes an instruction, as conch.seccomp builds it). Returns the listener
    fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0."""
    insns = char_array(bpf)
    fprog = ((len(bpf) // 8).to_bytes(2, "little") + bytes(6)
             + _ctypes.addressof(insns).to_bytes(8, "little"))  # struct sock_fprog
    return _check(_libc.syscall(c_long(_NR["seccomp"]), c_long(SECCOMP_SET_MODE_FILTER),
                                c_long(flags), fprog), "seccomp", "SECCOMP_SET_MODE_FILTER")


# --- bpf(2): the cgroup v2 device program (conch/cgroups/bpf.py) ----------------------

_NR["bpf"] = 321 if _machine == "x86_64" else 280


addressof = _ctypes.addressof
sizeof = _ctypes.sizeof


def bpf(cmd, attr, what=""):
    """bpf(cmd, attr): attr is a char_array holding the union bpf_attr (the kernel
    may write into it). Returns the result: an fd, or 0."""
    return _check(_libc.syscall(c_long(_NR["bpf"]), c_long(cmd), attr, c_long(sizeof(attr))),
                  "bpf", what or str(cmd))


# --- clone3(CLONE_INTO_CGROUP): a fork born in its cgroup2 cgroup --------------------------

CLONE_INTO_CGROUP = 0x200000000
_NR["clone3"] = 435  # the same on x86_64 and aarch64


_fork_api = []


def fork_into_cgroup(cgfd):
    """os.fork(), but the child is born in the cgroup2 directory open as `cgfd`
    (clone3 with CLONE_INTO_CGROUP). Moving a process later through
    cgroup.procs takes cgroup_threadgroup_rwsem for writing, which waits for an
    RCU grace period (~15 ms here); a child placed at fork pays nothing.
    Python's own fork bookkeeping runs around the system call exactly as in
    os.fork (PyOS_BeforeFork, PyOS_AfterFork_Child/Parent). Raises OSError
    when the kernel (or a seccomp filter) refuses: then nothing was forked."""
    if not _fork_api:
        # C-API functions, called with the GIL held; and syscall(2) with the GIL
        # held: the child returns holding it, as after fork()
        api = type("_PyApiFunc", (_ctypes.CFuncPtr,), {
            "_flags_": _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_PYTHONAPI,
            "_restype_": None})
        call = type("_PyApiLongFunc", (_ctypes.CFuncPtr,), {
            "_flags_": _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_PYTHONAPI
            | _ctypes.FUNCFLAG_USE_ERRNO, "_restype_": c_long})
        _fork_api.extend((api(("PyOS_BeforeFork", _Libc)), api(("PyOS_AfterFork_Child", _Libc)),
                          api(("PyOS_AfterFork_Parent", _Libc)), call(("syscall", _Libc))))
    before, after_child, after_parent, syscall = _fork_api
    # struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal (SIGCHLD),
    # stack, stack_size, tls, set_tid, set_tid_size, cgroup
    args = char_array(_u64s(CLONE_INTO_CGROUP, 0, 0, 0, 17, 0, 0, 0, 0, 0, cgfd))
    before()
    pid = syscall(c_long(_NR["clone3"]), args, c_long(sizeof(args)))
    if pid == 0:
        after_child()
        return 0
    err = get_errno()
    after_parent()
    if pid < 0:
        raise SyscallError(err, "clone3", "CLONE_INTO_CGROUP")
    return pid
