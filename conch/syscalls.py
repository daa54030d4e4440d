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
import os


class c_int(_ctypes._SimpleCData):
    _type_ = "i"


class c_uint(_ctypes._SimpleCData):
    _type_ = "I"


class c_long(_ctypes._SimpleCData):
    _type_ = "l"


class c_char(_ctypes._SimpleCData):
    _type_ = "c"


class _Buf(_ctypes.Array):
    _type_ = c_char
    _length_ = 128


class _Libc:
    _handle = _ctypes.dlopen(None, 2)  # RTLD_NOW; the process's own symbols


class _IntFunc(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class _LongFunc(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = c_long


class _Lib:
    """libc functions, looked up on first use."""

    def __getattr__(self, name):
        f = (_LongFunc if name == "syscall" else _IntFunc)((name, _Libc))
        setattr(self, name, f)
        return f


_libc = _Lib()
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
    _check(_libc.syscall(c_long(_NR["close_range"]), c_uint(first), c_uint(last),
                         c_uint(flags)), "close_range")


CLOSE_RANGE_CLOEXEC = 4


def pidfd_send_signal(pidfd, sig):
    _check(_libc.syscall(c_long(_NR["pidfd_send_signal"]), pidfd, sig, None, 0),
           "pidfd_send_signal", str(sig))


def _u64s(*vals):
    return b"".join(v.to_bytes(8, "little") for v in vals)


def openat2(dirfd, path, flags, mode=0, resolve=0):
    how = _u64s(flags | os.O_CLOEXEC, mode, resolve)  # struct open_how
    ret = _libc.syscall(c_long(_NR["openat2"]), dirfd, _b(path), how, c_long(len(how)))
    return _check(ret, "openat2", path)


def mount_setattr(dirfd, path, flags, attr_set, attr_clr=0, propagation=0,
                  userns_fd=0, what=None):
    attr = _u64s(attr_set, attr_clr, propagation, userns_fd)  # struct mount_attr
    ret = _libc.syscall(c_long(_NR["mount_setattr"]), dirfd, _b(path), c_uint(flags),
                        attr, c_long(len(attr)))
    _check(ret, "mount_setattr", what or path)


def fstatfs_type(fd):
    """The f_type (filesystem magic) of an open fd."""
    buf = _Buf()
    _check(_libc.fstatfs(fd, buf), "fstatfs", f"fd {fd}")
    return int.from_bytes(buf.raw[:8], "little")


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


def last_cap():
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except OSError:
        return 40
