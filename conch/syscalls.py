"""Thin wrappers over the Linux system calls that Python's os module lacks.

Every wrapper raises SyscallError, an OSError that names the call and the
path it acted on, so that a failure deep in container set-up reads as
``mount /proc (proc): Operation not permitted`` and not as a bare errno.

This module is on the start path of every container: it imports only
modules the interpreter has already loaded (os, sys) and ctypes, which it
uses through the C library already mapped into the process (no dlopen of
a file, no ctypes.util.find_library, which would import re and run ldconfig).
"""

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)

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
           "mount_setattr": 442}
elif _machine == "aarch64":
    _NR = {"pivot_root": 41, "pidfd_send_signal": 424, "open_tree": 428,
           "move_mount": 429, "close_range": 436, "openat2": 437,
           "mount_setattr": 442}
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
        return f"{self.call}{where}: {self.strerror}"


def _check(ret, call, what=""):
    if ret < 0:
        raise SyscallError(ctypes.get_errno(), call, what)
    return ret


def oserror(err, call, what=""):
    """Re-raise an OSError from the os module as a SyscallError."""
    return SyscallError(err.errno or 0, call, what or (err.filename or ""))


_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                        ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.unshare.argtypes = (ctypes.c_int,)
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)
_libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong, ctypes.c_ulong)
_libc.syscall.restype = ctypes.c_long
_libc.setdomainname.argtypes = (ctypes.c_char_p, ctypes.c_size_t)


def _b(s):
    return s if s is None or isinstance(s, bytes) else os.fsencode(s)


def mount(source, target, fstype, flags=0, data=None, what=None):
    """mount(2). `what` names the target in errors when target is /proc/self/fd/N."""
    ret = _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data))
    if ret < 0:
        kind = f" ({fstype})" if fstype else ""
        raise SyscallError(ctypes.get_errno(), "mount", f"{what or target}{kind}")


def umount2(target, flags=0):
    _check(_libc.umount2(_b(target), flags), "umount2", target)


def unshare(flags):
    _check(_libc.unshare(flags), "unshare", hex(flags))


def setns(fd, nstype=0, what=""):
    _check(_libc.setns(fd, nstype), "setns", what)


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), "prctl", str(option))


def set_name(name):
    """prctl(PR_SET_NAME): the comm that ps shows, at most 15 bytes."""
    buf = ctypes.create_string_buffer(name[:15])
    _check(_libc.prctl(PR_SET_NAME, ctypes.cast(buf, ctypes.c_void_p).value or 0, 0, 0, 0),
           "prctl", "PR_SET_NAME")


def pivot_root(new_root, put_old):
    _check(_libc.syscall(_NR["pivot_root"], _b(new_root), _b(put_old)),
           "pivot_root", new_root)


def setdomainname(name):
    b = _b(name)
    _check(_libc.setdomainname(b, len(b)), "setdomainname", name)


def close_range(first, last=0xFFFFFFFF, flags=0):
    _check(_libc.syscall(_NR["close_range"], ctypes.c_uint(first),
                         ctypes.c_uint(last), ctypes.c_uint(flags)), "close_range")


CLOSE_RANGE_CLOEXEC = 4


def pidfd_send_signal(pidfd, sig):
    _check(_libc.syscall(_NR["pidfd_send_signal"], pidfd, sig, None, 0),
           "pidfd_send_signal", str(sig))


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64))


def openat2(dirfd, path, flags, mode=0, resolve=0):
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    ret = _libc.syscall(_NR["openat2"], dirfd, _b(path), ctypes.byref(how),
                        ctypes.sizeof(how))
    return _check(ret, "openat2", path)


class _MountAttr(ctypes.Structure):
    _fields_ = (("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64))


def mount_setattr(dirfd, path, flags, attr_set, attr_clr=0, propagation=0,
                  userns_fd=0, what=None):
    attr = _MountAttr(attr_set, attr_clr, propagation, userns_fd)
    ret = _libc.syscall(_NR["mount_setattr"], dirfd, _b(path), flags,
                        ctypes.byref(attr), ctypes.sizeof(attr))
    _check(ret, "mount_setattr", what or path)


def fstatfs_type(fd):
    """The f_type (filesystem magic) of an open fd."""
    buf = ctypes.create_string_buffer(128)
    _check(_libc.fstatfs(fd, buf), "fstatfs", f"fd {fd}")
    return int.from_bytes(buf.raw[:ctypes.sizeof(ctypes.c_long)], "little")


def sigset(signals):
    """A kernel sigset_t (128 bytes) with the given signals."""
    mask = 0
    for sig in signals:
        mask |= 1 << (sig - 1)
    return ctypes.create_string_buffer(mask.to_bytes(128, "little"), 128)


SFD_CLOEXEC = 0o2000000


def signalfd(signals):
    """A signalfd for `signals` (which must be blocked by the caller)."""
    return _check(_libc.signalfd(-1, sigset(signals), SFD_CLOEXEC), "signalfd")


# --- capabilities ------------------------------------------------------------

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32))


def capset(effective, permitted, inheritable):
    """Set the calling thread's capability sets from 64-bit masks."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(hdr), data), "capset")


def last_cap():
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except OSError:
        return 40
