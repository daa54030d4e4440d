"""User namespaces: rootless mode, id maps, and namespaces for idmapped mounts.

Rootless (``--rootless auto|true|false``, as runc): `auto` means rootless when
conch runs as a non-root user, or as root in a user namespace that does not map
every id. A rootless conch makes no cgroup unless a writable delegated cgroup v2
subtree is there (and warns when linux.resources asked for limits); `true`
also lets root go on when a cgroup cannot be made.

Id maps of a new user namespace (written while the init waits on "usermap"):

* as root: written directly to /proc/PID/{uid,gid}_map;
* unprivileged, mapping only the caller's own id (one line, size 1): written
  directly too, after "deny" to /proc/PID/setgroups, as the kernel requires;
* unprivileged, any other map: through newuidmap/newgidmap (Debian's uidmap),
  which check the ranges against /etc/subuid and /etc/subgid. conch checks
  them first, so that the error names the field and the range.

The init is dumpable only while an unprivileged parent writes its maps (the
kernel gives the /proc/PID files of a non-dumpable process to root, so neither
conch nor newuidmap, which checks that the caller owns the process, could write
them), and non-dumpable again before it does anything else.

Idmapped mounts (runtime-spec 1.2: a mount's uidMappings/gidMappings, the
`idmap`/`ridmap` options): conch, in its own namespaces, clones the source
with open_tree(OPEN_TREE_CLONE), makes a user namespace holding the mappings
(a forked helper unshares it, conch writes its maps and keeps an fd of
/proc/PID/ns/user) and marks the clone idmapped with mount_setattr; the init
moves the detached tree onto its target with move_mount.

Nothing here imports more than the start path already has.
"""

import _signal
from . import _os as os
import _stat as stat  # the C module: stat.py would be one more import

from . import cgroups
from . import syscalls as sc
from .errors import ConchError, ConfigError


def in_initial_userns():
    """True when every uid is mapped (the host's user namespace, or one as good)."""
    try:
        with open("/proc/self/uid_map", "rb") as f:
            return f.read().split() == [b"0", b"0", b"4294967295"]
    except OSError:
        return True


def is_rootless(mode="auto"):
    if mode == "true":
        return True
    if mode == "false":
        return False
    return os.geteuid() != 0 or not in_initial_userns()


def host_id(maps, cid=0):
    """The host id that container id `cid` maps to, or None."""
    for c, h, n in maps:
        if c <= cid < c + n:
            return h + cid - c
    return None


# --- the maps of a new user namespace ---------------------------------------------

def write_maps(pid, uid_maps, gid_maps, field="linux"):
    """Write the id maps of the user namespace of `pid`, as the caller may."""
    if os.geteuid() == 0:
        _write_map(pid, "uid_map", uid_maps, field)
        _write_map(pid, "gid_map", gid_maps, field)
        return
    euid, egid = os.geteuid(), os.getegid()
    own_uid = len(uid_maps) == 1 and uid_maps[0][1:] == (euid, 1)
    own_gid = len(gid_maps) == 1 and gid_maps[0][1:] == (egid, 1)
    user = None
    if not (own_uid and own_gid):
        user = _passwd_name(euid)
    if own_uid:
        _write_map(pid, "uid_map", uid_maps, field)
    else:
        _check_subids(uid_maps, euid, user, "/etc/subuid", f"{field}.uidMappings")
        _newidmap("newuidmap", pid, uid_maps, f"{field}.uidMappings")
    if own_gid:
        # an unprivileged gid_map needs setgroups denied first (user_namespaces(7))
        _write_file(f"/proc/{pid}/setgroups", b"deny", f"{field}.gidMappings")
        _write_map(pid, "gid_map", gid_maps, field)
    else:
        _check_subids(gid_maps, egid, user, "/etc/subgid", f"{field}.gidMappings")
        _newidmap("newgidmap", pid, gid_maps, f"{field}.gidMappings")


def _write_map(pid, name, maps, field):
    data = "".join(f"{c} {h} {n}\n" for c, h, n in maps).encode()
    _write_file(f"/proc/{pid}/{name}", data, f"{field}.{name[0]}idMappings")


def _write_file(path, data, field):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise ConchError(f"{field}: opening {path}: {e.strerror}") from None
    try:
        os.write(fd, data)
    except OSError as e:
        raise ConchError(f"{field}: writing {path.rpartition('/')[2]}: {e.strerror}") from None
    finally:
        os.close(fd)


def _passwd_name(uid):
    """The caller's user name from /etc/passwd, parsed here (no NSS), or None."""
    want = str(uid).encode()
    try:
        with open("/etc/passwd", "rb") as f:
            for line in f:
                parts = line.split(b":")
                if len(parts) > 2 and parts[2] == want:
                    return parts[0].decode(errors="replace")
    except OSError:
        pass
    return None


def subid_ranges(path, uid, user):
    """[(start, count)] granted to the user (by name or by number) in /etc/subuid or /etc/subgid."""
    out = []
    try:
        with open(path, "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return out
    names = {str(uid)} | ({user} if user else set())
    for line in data.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in names and parts[1].isdigit() and parts[2].isdigit():
            out.append((int(parts[1]), int(parts[2])))
    return sorted(out)


def _covered(ranges, start, count):
    end = start + count
    for s, n in ranges:  # sorted: consume the wanted range from its start
        if s <= start < s + n:
            start = s + n
            if start >= end:
                return True
    return False


def _check_subids(maps, own, user, path, field):
    ranges = None
    for i, (_, h, n) in enumerate(maps):
        if n == 1 and h == own:
            continue  # one's own id needs no grant
        if ranges is None:
            ranges = subid_ranges(path, own, user)
        if not _covered(ranges, h, n):
            who = user or f"uid {own}"
            raise ConchError(f"{field}[{i}]: range {h}-{h + n - 1} is not allowed for user "
                             f"{who} by {path}")


def _which(name):
    for d in (os.environ.get("PATH") or "/usr/bin:/bin").split(":") + ["/usr/bin", "/usr/sbin"]:
        p = (d or ".") + "/" + name
        if os.access(p, os.X_OK):
            return p
    return None


def _newidmap(tool, pid, maps, field):
    path = _which(tool)
    if path is None:
        raise ConchError(f"{field}: mapping ids other than one's own needs {tool} "
                         f"(Debian package uidmap), which is not installed")
    args = [tool, str(pid)] + [str(v) for m in maps for v in m]
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, ())
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(w, 1)
            os.dup2(w, 2)
            sc.close_range(3)
            os.execve(path, args, {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        except BaseException:  # noqa: B902 - never return into conch in the child
            pass
        os._exit(127)
    os.close(w)
    out = b""
    try:
        while True:
            data = os.read(r, 4096)
            if not data:
                break
            out += data
    finally:
        os.close(r)
    _, status = os.waitpid(child, 0)
    if status != 0:
        msg = out.decode(errors="replace").strip().replace("\n", "; ") \
            or f"exit status {os.waitstatus_to_exitcode(status)}"
        if msg.startswith(tool + ": "):
            msg = msg[len(tool) + 2:]
        raise ConchError(f"{field}: {tool}: {msg}")


# --- user namespace fds for idmapped mounts --------------------------------------

def userns_fd(uid_maps, gid_maps):
    """An fd of a new user namespace with these maps (for mount_setattr). A child
    unshares it and waits; its maps are written here; the child then exits."""
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(ready_r)
            os.close(hold_w)
            sc.unshare(sc.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(hold_r, 1)  # until the parent has its fd
        except BaseException:  # noqa: B902
            pass
        os._exit(0)
    os.close(ready_w)
    os.close(hold_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise ConchError("idmapped mount: the helper could not make a user namespace")
        write_maps(child, uid_maps, gid_maps, field="mounts")
        return os.open(f"/proc/{child}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(hold_w)
        os.waitpid(child, 0)


def idmapped_mounts(cfg, rootless):
    """{index in cfg.mounts: fd of a detached, idmapped clone of the source} for every
    mount asking for it; checked first, so that a wrong one fails before anything."""
    want = []
    for i, m in enumerate(cfg.mounts):
        opts = set(m.extra)
        if not (m.uid_mappings or m.gid_mappings or "idmap" in opts or "ridmap" in opts):
            continue
        f = f"mounts[{i}]"
        if not m.bind:
            raise ConfigError(f, "idmapped mounts are only supported for bind mounts")
        if rootless:
            raise ConfigError(f, "idmapped mounts are not supported for rootless containers")
        uids, gids = m.uid_mappings, m.gid_mappings
        if not uids and not gids:
            if not (cfg.uid_mappings and cfg.gid_mappings):
                raise ConfigError(f + ".options", "idmap without uidMappings and gidMappings "
                                  "takes the container's, but it has no user namespace mappings")
            uids, gids = cfg.uid_mappings, cfg.gid_mappings
        elif not (uids and gids):
            raise ConfigError(f + (".gidMappings" if uids else ".uidMappings"),
                              "an idmapped mount needs both uidMappings and gidMappings")
        want.append((i, m, tuple(uids), tuple(gids)))
    trees = {}
    if not want:
        return trees
    nsfds = {}
    try:
        for i, m, uids, gids in want:
            key = (uids, gids)
            if key not in nsfds:
                nsfds[key] = userns_fd(uids, gids)
            flags = sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC
            if m.flags & sc.MS_REC:
                flags |= sc.AT_RECURSIVE
            try:
                tree = sc.open_tree(-100, m.source, flags)  # AT_FDCWD
            except OSError as e:
                raise ConchError(f"mounts[{i}].source: {e}") from None
            trees[i] = tree
            rec = sc.AT_RECURSIVE if "ridmap" in m.extra else 0
            try:
                sc.mount_setattr(tree, "", sc.AT_EMPTY_PATH | rec, sc.MOUNT_ATTR_IDMAP,
                                 userns_fd=nsfds[key], what=m.source)
            except OSError as e:
                hint = " (the filesystem may not support idmapped mounts)" \
                    if e.errno == 22 else ""
                raise ConchError(f"mounts[{i}]: idmapped mount of {m.source}: {e}{hint}") from None
    except BaseException:
        for fd in trees.values():
            os.close(fd)
        raise
    finally:
        for fd in nsfds.values():
            os.close(fd)
    return trees


# --- cgroups of a rootless container ----------------------------------------------

CGROUP_ROOT = "/sys/fs/cgroup"


def _unified_root():
    """The cgroup2 mount: /sys/fs/cgroup on a v2 host, /sys/fs/cgroup/unified on a hybrid one."""
    for root in (CGROUP_ROOT, CGROUP_ROOT + "/unified"):
        if os.path.exists(root + "/cgroup.procs") and os.path.exists(root + "/cgroup.controllers"):
            return root
    return None


def _own_cgroup2():
    """Our own path in the cgroup2 hierarchy (the "0::" line of /proc/self/cgroup)."""
    with open("/proc/self/cgroup", "rb") as f:
        for line in f.read().decode().splitlines():
            if line.startswith("0::"):
                return line[3:] or "/"
    return "/"


def delegated_cgroup(cgpath, cid):
    """A v2 manager for the container's cgroup when the caller may make it and move
    its init in: the parent directory writable, and the cgroup.procs of the common
    ancestor of the caller's own cgroup and the new one writable (delegation)."""
    root = _unified_root()
    if root is None:
        return None
    own_dir = os.path.normpath(root + _own_cgroup2())
    if cgpath.startswith("/"):
        path = os.path.normpath(root + cgpath)
    else:
        path = os.path.normpath(os.path.join(own_dir, cgpath or cid))
    common = own_dir
    while common != root and not (path + "/").startswith(common + "/"):
        common = os.path.dirname(common)
    parent = os.path.dirname(path)
    while not os.path.isdir(parent) and parent.startswith(root + "/"):
        parent = os.path.dirname(parent)
    if not (os.access(parent, os.W_OK) and os.access(os.path.join(common, "cgroup.procs"), os.W_OK)):
        return None
    return cgroups.Manager.from_state({"version": 2, "dirs": {"": path}})


def resources_asked(cfg):
    """The linux.resources keys that ask for limits (devices rules do not count:
    a rootless container gets only the host's nodes, bound)."""
    return sorted(k for k, v in cfg.resources.items() if k != "devices" and v not in (None, {}, []))


def is_permission_error(e):
    s = str(e).lower()
    return any(t in s for t in ("permission denied", "operation not permitted",
                                "read-only file system"))


def fix_stdio_owner(uid, gid):
    """As root, before the fork: stdio pipes and sockets the caller owns are given to
    the host id of the container's root, so that it can reopen them (/dev/stdout)."""
    euid = os.geteuid()
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if st.st_uid == euid and (stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode)):
            try:
                os.fchown(fd, uid, gid)
            except OSError:
                pass
