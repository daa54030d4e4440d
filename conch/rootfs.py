"""The container's filesystem: mounts, /dev, pivot_root, masked and read-only paths.

Runs in the container init, in its new mount namespace. Every path inside the
rootfs is resolved by file descriptor: openat2(RESOLVE_IN_ROOT) from an fd of
the rootfs, so a symlink in the rootfs is followed as the container would see
it and can never lead onto the host; missing mount targets are created one
component at a time with mkdirat under an fd that was so resolved; mounts go
onto /proc/self/fd/N of the resolved target (CVE-2021-30465, CVE-2024-45310).
"""

from . import _os as os
import stat

from . import cgroups
from . import syscalls as sc
from .errors import ConchError

O_PATH = sc.O_PATH
IN_ROOT = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS
NO_LINKS = IN_ROOT | sc.RESOLVE_NO_SYMLINKS


def fdpath(fd):
    return f"/proc/self/fd/{fd}"


def open_in_root(rootfd, path, flags=O_PATH, resolve=IN_ROOT):
    return sc.openat2(rootfd, path.lstrip("/") or ".", flags, 0, resolve)


def mkdir_all(rootfd, path, mode=0o755, resolve=IN_ROOT, last_is_file=False, hops=0):
    """Create `path` inside the root (each missing component by mkdirat under an
    fd resolved in the root) and return an O_PATH fd of it. A dangling symlink on
    the way is followed as the container would see it: its target is created."""
    parts = [p for p in path.split("/") if p and p != "."]
    try:
        return open_in_root(rootfd, path, O_PATH, resolve)
    except OSError as e:
        if e.errno != 2:
            raise
    done = ""
    parent = os.dup(rootfd)
    try:
        for i, comp in enumerate(parts):
            sub = done + "/" + comp
            try:
                fd = open_in_root(rootfd, sub, O_PATH, resolve)
            except OSError as e:
                if e.errno != 2:
                    raise
                try:
                    link = os.readlink(comp, dir_fd=parent)
                except OSError:
                    link = None
                if link is not None:
                    if hops >= 40:
                        raise OSError(40, "Too many levels of symbolic links", path) from None
                    rest = "/".join([link if link.startswith("/") else done + "/" + link]
                                    + parts[i + 1:])
                    return mkdir_all(rootfd, rest, mode, resolve, last_is_file, hops + 1)
                if last_is_file and i == len(parts) - 1:
                    os.close(os.open(comp, os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                                     | os.O_WRONLY, 0o644, dir_fd=parent))
                else:
                    os.mkdir(comp, mode, dir_fd=parent)
                fd = open_in_root(rootfd, sub, O_PATH, resolve)
            os.close(parent)
            parent = fd
            done = sub
        return os.dup(parent)
    finally:
        os.close(parent)


# --- mounts -----------------------------------------------------------------

def prepare_root(cfg):
    """Make / private-ish and the rootfs a mount point of its own (pivot_root needs one)."""
    prop = cfg.rootfs_propagation or (sc.MS_SLAVE | sc.MS_REC)
    sc.mount(None, "/", None, prop)
    sc.mount(cfg.root, cfg.root, "bind", sc.MS_BIND | sc.MS_REC)


def mount_all(rootfd, cfg, cgroup_dirs, trees=None):
    """`trees`: {index of the mount: fd of a detached idmapped tree} (userns.idmapped_mounts)."""
    for i, m in enumerate(cfg.mounts):
        try:
            mount_one(rootfd, m, cfg, cgroup_dirs, trees.get(i) if trees else None)
        except OSError as e:
            raise ConchError(f'error mounting "{m.source or m.type}" to rootfs at '
                             f'"{m.destination}": {e}') from None


def _is_dir_source(m):
    if not m.bind:
        return True
    try:
        return stat.S_ISDIR(os.stat(m.source).st_mode)
    except OSError as e:
        raise sc.SyscallError(e.errno, "stat", m.source) from None


def mount_one(rootfd, m, cfg, cgroup_dirs, tree=None):
    if m.type == "cgroup":
        return mount_cgroup_v1(rootfd, m, cgroup_dirs)
    resolve = NO_LINKS if m.type in ("proc", "sysfs") else IN_ROOT
    isdir = _is_dir_source(m) if tree is None else stat.S_ISDIR(os.fstat(tree).st_mode)
    fd = mkdir_all(rootfd, m.destination, 0o755, resolve, last_is_file=not isdir)
    try:
        target = fdpath(fd)
        if m.type in ("proc", "sysfs"):
            st = os.fstat(fd)
            if not stat.S_ISDIR(st.st_mode):
                raise ConchError(f"{m.destination} is not a directory: refusing to mount {m.type} there")
        flags = m.flags
        bind = m.bind
        if tree is not None:
            sc.move_mount(tree, fd, m.destination)  # an idmapped clone of the source
            os.close(tree)
        elif m.bind:
            sc.mount(m.source, target, None, flags & (sc.MS_BIND | sc.MS_REC), None, m.destination)
        else:
            try:
                sc.mount(m.source or m.type, target, m.type, flags, m.data or None, m.destination)
            except OSError as e:
                if m.type != "sysfs" or e.errno != 1 or not cfg.has_ns("user"):
                    raise
                # a user namespace that does not own the network namespace may not mount
                # sysfs: bind the host's /sys instead, with the mount's flags (as runc)
                sc.mount("/sys", target, None, sc.MS_BIND | sc.MS_REC, None, m.destination)
                bind = True
        extra = flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
        if not (m.propagation or m.rec_set or m.rec_clr or (bind and (extra or m.clear))):
            return
        # fd is the directory under the new mount: what follows acts on the mount itself
        os.close(fd)
        fd = open_in_root(rootfd, m.destination, O_PATH, resolve)
        if bind and (extra or m.clear):
            # a bind mount takes its flags only from a remount
            remount_bind(fd, m.destination, extra, m.clear)
        for p in m.propagation:
            sc.mount(None, fdpath(fd), None, p, None, m.destination)
        if m.rec_set or m.rec_clr:
            sc.mount_setattr(fd, "", 0x1000 | sc.AT_RECURSIVE, m.rec_set, m.rec_clr,
                             what=m.destination)  # AT_EMPTY_PATH
    finally:
        os.close(fd)


def remount_bind(fd, what, flags, clear=0):
    """Apply flags to a bind mount, keeping the ones the kernel locks (nodev... in a userns)."""
    locked = 0
    try:
        v = os.statvfs(fdpath(fd))
        locked = v.f_flag & (sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_RDONLY
                             | sc.MS_NOATIME | sc.MS_NODIRATIME | sc.MS_RELATIME)
    except OSError:
        pass
    flags = (locked & ~clear) | flags
    sc.mount(None, fdpath(fd), None, sc.MS_REMOUNT | sc.MS_BIND | flags, None, what)


# MS_ flags of a mount -> the MOUNT_ATTR_ flags mount_setattr takes for them
_ATTRS = ((sc.MS_RDONLY, sc.MOUNT_ATTR_RDONLY), (sc.MS_NOSUID, sc.MOUNT_ATTR_NOSUID),
          (sc.MS_NODEV, sc.MOUNT_ATTR_NODEV), (sc.MS_NOEXEC, sc.MOUNT_ATTR_NOEXEC))


def mount_cgroup_v1(rootfd, m, cgroup_dirs):
    """/sys/fs/cgroup: on a unified host a bind of the container's cgroup; on v1 a
    tmpfs with each hierarchy bound from the container's own cgroup directory.
    The flags (ro, nosuid, ...) go on the whole tree at once with a recursive
    mount_setattr, instead of a remount of each bind."""
    attrs = 0
    for flag, attr in _ATTRS:
        if m.flags & flag:
            attrs |= attr
    fd = mkdir_all(rootfd, m.destination, 0o755, NO_LINKS)
    try:
        if cgroups.is_v2_host():
            src = cgroup_dirs.get("", cgroups.CGROUP_ROOT)
            sc.mount(src, fdpath(fd), None, sc.MS_BIND | sc.MS_REC, None, m.destination)
        else:
            sc.mount("tmpfs", fdpath(fd), "tmpfs", 0, "mode=755", m.destination)
            for name, path in sorted(cgroup_dirs.items()):
                if not name:
                    continue
                sub = mkdir_all(rootfd, m.destination + "/" + name, 0o755, NO_LINKS)
                try:
                    sc.mount(path, fdpath(sub), None, sc.MS_BIND | sc.MS_REC, None,
                             m.destination + "/" + name)
                finally:
                    os.close(sub)
        if attrs:
            os.close(fd)
            fd = open_in_root(rootfd, m.destination, O_PATH, NO_LINKS)
            sc.mount_setattr(fd, "", 0x1000 | sc.AT_RECURSIVE, attrs, 0, what=m.destination)
    finally:
        os.close(fd)


# --- /dev ---------------------------------------------------------------------

DEFAULT_DEVICES = (
    ("/dev/null", "c", 1, 3, 0o666, 0, 0),
    ("/dev/zero", "c", 1, 5, 0o666, 0, 0),
    ("/dev/full", "c", 1, 7, 0o666, 0, 0),
    ("/dev/random", "c", 1, 8, 0o666, 0, 0),
    ("/dev/urandom", "c", 1, 9, 0o666, 0, 0),
    ("/dev/tty", "c", 5, 0, 0o666, 0, 0),
)
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"))


def dev_is_bind(cfg):
    return any(m.destination == "/dev" and m.bind for m in cfg.mounts)


def setup_dev(rootfd, cfg, in_userns):
    """Default devices, linux.devices and the /dev symlinks, through an fd of /dev
    opened without following symlinks (a rootfs whose /dev is a symlink is refused)."""
    if dev_is_bind(cfg):
        return
    try:
        devfd = mkdir_all(rootfd, "/dev", 0o755, NO_LINKS)
    except OSError as e:
        raise ConchError(f"/dev in the rootfs: {e}") from None
    try:
        seen = set()
        for dev in list(cfg.devices) + list(DEFAULT_DEVICES):
            if dev[0] in seen:
                continue
            seen.add(dev[0])
            make_device(rootfd, dev, in_userns)
        dirfd = os.open(fdpath(devfd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name, target in DEV_LINKS:
                _symlink(target, name, dirfd)
            if os.path.exists("/proc/kcore"):
                _symlink("/proc/kcore", "core", dirfd)
            _symlink("pts/ptmx", "ptmx", dirfd)
        finally:
            os.close(dirfd)
    finally:
        os.close(devfd)


def _symlink(target, name, dirfd):
    try:
        os.symlink(target, name, dir_fd=dirfd)
    except FileExistsError:
        pass


def make_device(rootfd, dev, in_userns):
    path, typ, major, minor, mode, uid, gid = dev
    parent, _, name = path.rpartition("/")
    pfd = mkdir_all(rootfd, parent, 0o755, NO_LINKS)
    dirfd = os.open(fdpath(pfd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.close(pfd)
    try:
        if in_userns:
            # mknod is not allowed in a user namespace: bind the host's node instead
            try:
                os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o644, dir_fd=dirfd))
            except FileExistsError:
                pass
            fd = os.open(name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
            try:
                sc.mount(path, fdpath(fd), None, sc.MS_BIND, None, path)
            finally:
                os.close(fd)
            return
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[typ]
        try:
            os.mknod(name, kind | (mode & 0o7777), os.makedev(major, minor), dir_fd=dirfd)
        except FileExistsError:
            st = os.lstat(name, dir_fd=dirfd)
            if (st.st_mode & 0o170000) == kind and st.st_rdev == os.makedev(major, minor):
                return
            os.unlink(name, dir_fd=dirfd)
            os.mknod(name, kind | (mode & 0o7777), os.makedev(major, minor), dir_fd=dirfd)
        os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)
    except OSError as e:
        raise ConchError(f"creating device {path}: {e.strerror}") from None
    finally:
        os.close(dirfd)


# --- pivot ----------------------------------------------------------------------

def pivot_root(root):
    """pivot_root(".", ".") then detach the old root, as runc does: no directory
    for the old root is needed in the rootfs."""
    newroot = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    oldroot = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fchdir(newroot)
        sc.pivot_root(".", ".")
        os.fchdir(oldroot)
        # keep the unmount of the old root from propagating to the host
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(newroot)
        os.close(oldroot)


def move_root(root):
    """--no-pivot: move the rootfs over / and chroot into it."""
    os.chdir(root)
    sc.mount(root, "/", None, sc.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


# --- after the pivot ---------------------------------------------------------------

def _dev_null_fd():
    """An fd of the real /dev/null (char 1:3), or an error (CVE-2025-31133)."""
    fd = os.open("/dev/null", O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise ConchError("/dev/null in the container is not the null device: refusing to mask with it")
    return fd


def mask_paths(paths):
    if not paths:
        return
    null = None
    try:
        for p in paths:
            try:
                fd = sc.openat2(-100, p, O_PATH | os.O_NOFOLLOW, 0, IN_ROOT)
            except OSError as e:
                if e.errno == 2:
                    continue
                raise ConchError(f"masking {p}: {e}") from None
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    sc.mount("tmpfs", fdpath(fd), "tmpfs", sc.MS_RDONLY, None, p)
                else:
                    if null is None:
                        null = _dev_null_fd()
                    sc.mount(fdpath(null), fdpath(fd), None, sc.MS_BIND, None, p)
            finally:
                os.close(fd)
    finally:
        if null is not None:
            os.close(null)


def readonly_paths(paths):
    for p in paths:
        try:
            fd = sc.openat2(-100, p, O_PATH | os.O_NOFOLLOW, 0, IN_ROOT)
        except OSError as e:
            if e.errno == 2:
                continue
            raise ConchError(f"making {p} read-only: {e}") from None
        try:
            sc.mount(fdpath(fd), fdpath(fd), None, sc.MS_BIND | sc.MS_REC, None, p)
            fd2 = sc.openat2(-100, p, O_PATH | os.O_NOFOLLOW, 0, IN_ROOT)
            try:
                remount_bind(fd2, p, sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
            finally:
                os.close(fd2)
        finally:
            os.close(fd)


def write_sysctls(sysctls):
    if not sysctls:
        return
    procfd = os.open("/proc/sys", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if sc.fstatfs_type(procfd) != sc.PROC_SUPER_MAGIC:
            raise ConchError("/proc/sys in the container is not procfs: refusing to write sysctls")
        for key, value in sysctls:
            rel = key.replace(".", "/")
            try:
                fd = sc.openat2(procfd, rel, os.O_WRONLY, 0, sc.RESOLVE_BENEATH | sc.RESOLVE_NO_SYMLINKS)
            except OSError as e:
                raise ConchError(f"linux.sysctl.{key}: {e.strerror}") from None
            try:
                if sc.fstatfs_type(fd) != sc.PROC_SUPER_MAGIC:
                    raise ConchError(f"linux.sysctl.{key}: not a procfs file")
                os.write(fd, value.encode())
            except OSError as e:
                raise ConchError(f"linux.sysctl.{key}: writing {value!r}: {e.strerror}") from None
            finally:
                os.close(fd)
    finally:
        os.close(procfd)


def readonly_root():
    fd = os.open("/", O_PATH | os.O_CLOEXEC)
    try:
        remount_bind(fd, "/", sc.MS_RDONLY)
    finally:
        os.close(fd)
