"""The container's filesystem: mounts, /dev, pivot_root, masked and read-only paths.

Runs in the container init, in its new mount namespace. Every path inside the
rootfs is resolved by file descriptor: openat2(RESOLVE_IN_ROOT) from an fd of
the rootfs, so a symlink in the rootfs is followed as the container would see
it and can never lead onto the host; missing mount targets are created one
component at a time with mkdirat under an fd that was so resolved; mounts go
onto /proc/self/fd/N of the resolved target (CVE-2021-30465, CVE-2024-45310).
"""

from . import _os as os
import _stat as stat  # the C module: stat.py would be one more import

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

# linux.rootfsPropagation to give the container's / once every mount is made: the
# shared and unbindable kinds (prepare_root, finish_root_propagation)
_root_propagation = 0


def prepare_root(cfg):
    """The new mount namespace's tree as linux.rootfsPropagation says (rslave when
    unset), the mount that holds the rootfs made private if it is still shared, and
    the rootfs a mount point of its own (pivot_root needs one), as runc does.

    A shared parent would make pivot_root fail (EINVAL) and would carry the bind of
    the rootfs, and every mount made in it, over to the host's mount namespace. After
    rslave, rprivate or runbindable nothing is shared any more, so only the other
    values read /proc/self/mountinfo. The shared and unbindable kinds are given to
    the container's / once it is the root and every mount is made, as runc does
    since 1.3.1 (runc 1.1 leaves / private after `shared`, fails on `unbindable`).
    Until then an unbindable value is taken as private: an unbindable tree could
    not be bound (neither the rootfs onto itself, nor a host directory from it)."""
    global _root_propagation
    prop = cfg.rootfs_propagation
    if not prop:
        sc.mount(None, "/", None, sc.MS_SLAVE | sc.MS_REC)
    else:
        if prop & (sc.MS_SHARED | sc.MS_UNBINDABLE):
            _root_propagation = prop
        if prop & sc.MS_UNBINDABLE:
            sc.mount(None, "/", None, sc.MS_PRIVATE | (prop & sc.MS_REC))
        else:
            sc.mount(None, "/", None, prop)
        if not prop & sc.MS_REC or prop & sc.MS_SHARED:
            parent_private_if_shared(cfg.root)
    sc.mount(cfg.root, cfg.root, "bind", sc.MS_BIND | sc.MS_REC)


def _mnt_id(fd):
    """The id of the mount an fd is on (/proc/self/fdinfo), as /proc/self/mountinfo has it."""
    with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
        for line in f:
            if line.startswith(b"mnt_id:"):
                return line.split()[1]
    raise ConchError(f"/proc/self/fdinfo/{fd} has no mnt_id")


def _unescape(field):
    """A mountinfo path: the kernel writes space, tab, newline and backslash as \\ooo."""
    if b"\\" not in field:
        return field
    out = bytearray()
    i = 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == 0x5C and len(code) == 3 and not code.strip(b"01234567"):
            out.append(int(code, 8))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return bytes(out)


def parent_private_if_shared(root):
    """runc's rootfsParentMountPrivate: the mount the rootfs is on, made private when it
    is shared. It is found by the mount id of an fd of the rootfs, so that symlinks in
    the path and mounts stacked on one mount point cannot mislead (runc picks the
    longest mount point that is a string prefix of the path)."""
    fd = os.open(root, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        mnt_id = _mnt_id(fd)
    finally:
        os.close(fd)
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split(b" ")
            if fields[0] != mnt_id:
                continue
            optional = fields[6:fields.index(b"-")]
            if any(o.startswith(b"shared:") for o in optional):
                point = os.fsdecode(_unescape(fields[4]))
                sc.mount(None, point, None, sc.MS_PRIVATE, None, f"{point} (the mount of the rootfs)")
            return
    raise ConchError(f"the mount of the rootfs {root} is not in /proc/self/mountinfo")


def finish_root_propagation():
    """Give the container's / the shared or unbindable propagation asked for, once
    every mount of the container is made: after pivot_root (a shared / or parent would
    make it fail), and after the console, masked and read-only paths, which are bind
    mounts (an unbindable mount cannot be bound). Called by readonly_paths, the last
    of them; nothing to do for the other values."""
    global _root_propagation
    if _root_propagation:
        sc.mount(None, "/", None, _root_propagation, None, "/ (linux.rootfsPropagation)")
        _root_propagation = 0


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
    data = m.data
    tmpfs = m.type == "tmpfs" and not m.bind
    fd = None
    if tmpfs and (m.copyup or not _has_mode(data)):
        # a tmpfs over a directory that exists takes its mode (runc), and its content
        # with tmpcopyup: the only case that asks whether the directory was there
        try:
            fd = open_in_root(rootfd, m.destination, O_PATH, resolve)
        except OSError as e:
            if e.errno != 2:
                raise
        if fd is not None:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode) and not _has_mode(data):
                mode = f"mode={stat.S_IMODE(st.st_mode):04o}"
                data = f"{mode},{data}" if data else mode
    if fd is None:
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
        elif tmpfs and m.copyup:
            mount_tmpfs_copyup(rootfd, fd, m, flags, data, resolve)
        else:
            try:
                sc.mount(m.source or m.type, target, m.type, flags, data or None, m.destination)
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


def _has_mode(data):
    return any(o.startswith("mode=") for o in data.split(",")) if data else False


def mount_tmpfs_copyup(rootfd, fd, m, flags, data, resolve):
    """tmpcopyup (runc's extension): a tmpfs over the directory `fd`, holding a copy of
    what the directory holds. The copy goes from an fd of the directory, taken before
    the tmpfs hides it, into an fd of the tmpfs: every name is opened relative to its
    parent's fd and never followed (O_NOFOLLOW; symlinks are copied as symlinks), so
    nothing outside the rootfs is read or written, whatever the rootfs holds. The
    tmpfs is writable until the copy is done, then made read-only if asked (as
    runc). If the copy fails, the tmpfs is unmounted again."""
    try:
        src = os.open(fdpath(fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise sc.oserror(e, "tmpcopyup: open", m.destination) from None
    try:
        sc.mount(m.source or "tmpfs", fdpath(fd), "tmpfs", flags & ~sc.MS_RDONLY, data or None,
                 m.destination)
        dst = -1
        try:
            dst = open_in_root(rootfd, m.destination, os.O_RDONLY | os.O_DIRECTORY, resolve)
            if sc.fstatfs_type(dst) != sc.TMPFS_MAGIC or os.fstat(dst).st_dev == os.fstat(src).st_dev:
                raise ConchError(f"tmpcopyup: {m.destination} is not the new tmpfs after mounting it")
            copy_tree(src, dst, m.destination.rstrip("/"))
            if flags & sc.MS_RDONLY:
                remount_bind(dst, m.destination, flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT))
        except BaseException:
            if dst >= 0:
                try:
                    sc.umount2(fdpath(dst), sc.MNT_DETACH)
                except OSError:
                    pass  # the mount namespace goes with the init
            raise
        finally:
            if dst >= 0:
                os.close(dst)
    finally:
        os.close(src)


_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
COPY_DEPTH = 128


def copy_tree(src, dst, where, depth=0):
    """Copy what the directory open as `src` holds into the directory open as `dst`:
    files (content, owner, mode), directories (owner and mode, set once filled),
    symlinks (as they are, owner), device nodes, fifos and sockets. Hard links become
    separate files and times are not kept, as in runc. `where` names the directory
    in errors: `tmpcopyup /run/x: permission denied`."""
    if depth > COPY_DEPTH:
        raise ConchError(f"tmpcopyup: {where}: more than {COPY_DEPTH} levels of directories")
    with os.scandir(src) as it:
        names = [e.name for e in it]
    for name in names:
        what = f"{where}/{name}"
        try:
            st = os.stat(name, dir_fd=src, follow_symlinks=False)
            kind = stat.S_IFMT(st.st_mode)
            perm = stat.S_IMODE(st.st_mode)
            if kind == stat.S_IFDIR:
                os.mkdir(name, 0o700, dir_fd=dst)
                s = os.open(name, _DIR, dir_fd=src)
                try:
                    d = os.open(name, _DIR, dir_fd=dst)
                    try:
                        copy_tree(s, d, what, depth + 1)
                        os.fchown(d, st.st_uid, st.st_gid)
                        os.fchmod(d, perm)  # after the chown: setgid stays
                    finally:
                        os.close(d)
                finally:
                    os.close(s)
            elif kind == stat.S_IFREG:
                s = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
                            | os.O_CLOEXEC, dir_fd=src)
                try:
                    if not stat.S_ISREG(os.fstat(s).st_mode):
                        raise OSError(22, "changed while being copied")
                    d = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                | os.O_CLOEXEC, 0o600, dir_fd=dst)
                    try:
                        while os.sendfile(d, s, None, 1 << 30):
                            pass
                        os.fchown(d, st.st_uid, st.st_gid)
                        os.fchmod(d, perm)  # after the chown, which drops setuid/setgid
                    finally:
                        os.close(d)
                finally:
                    os.close(s)
            elif kind == stat.S_IFLNK:
                os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
                os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
            else:  # device nodes, fifos, sockets (mknod makes them all)
                os.mknod(name, kind | perm, st.st_rdev, dir_fd=dst)
                os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        except sc.SyscallError:
            raise
        except OSError as e:
            raise sc.SyscallError(e.errno or 0, "tmpcopyup", what) from None


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
    if _root_propagation & sc.MS_SHARED:
        # / may be a peer of the host's (rootfsPropagation shared): the move would
        # show there too. What becomes of the old / does not matter: it is hidden.
        sc.mount(None, "/", None, sc.MS_PRIVATE)
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
    """linux.readonlyPaths: each a read-only bind of itself (resolved in the root)."""
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
