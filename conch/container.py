"""The container lifecycle, as a library: create, start, kill, delete, state.

The command modules in conch/cli are thin shells over these functions; a
Python program can call them directly::

    from conch.container import create, start, delete
    c = create("/run/conch", "web", "/srv/bundles/web")
    start(c.root, c.id)
"""

import _socket
from . import _os as os

from . import cgroups, config, hooks, sync
from . import syscalls as sc
from . import errors
from .errors import ConchError, ConfigError
from .state import START_SOCK, State, proc_stat, utc_now
from .start import _unix_path, start, start_launch  # noqa: F401 - the library's API
from .kill import _signal_init, _thaw, kill, signal_all  # noqa: F401
from .delete import _wait_gone, delete, destroy  # noqa: F401


def _warn(msg):
    os.write(2, f"conch: warning: {msg}\n".encode())


def write_pid_file(path, pid):
    """Bare digits, no newline, written to a temporary file and renamed into place."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, str(pid).encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def write_idmaps(pid, cfg):
    """The id maps of the init's new user namespace (directly, or newuidmap/newgidmap)."""
    from . import userns  # noqa: PLC0415 - only with a user namespace: off root's start path
    userns.write_maps(pid, cfg.uid_mappings, cfg.gid_mappings)


def require_cgroup(st, cmd):
    """The container's cgroup manager, for the commands that need one (pause, resume,
    ps, update, events, checkpoint, restore); a clear error when it has none, as a
    rootless container without a delegated cgroup v2 subtree."""
    mgr = cgroups.Manager.from_state(st.data.get("cgroup"))
    if mgr is None or not mgr.dirs:
        raise ConchError(f"{cmd} needs the container's cgroup, and container {st.id} has none "
                         "(rootless: no writable delegated cgroup v2 subtree was found)")
    return mgr


def _cgroup_manager(cfg, cid, rootless, systemd=False):
    """The cgroup manager for a new container, or None. As a rootless user (--rootless
    auto or true): a delegated cgroup v2 subtree if one is writable, else none."""
    mgr = cgroups.manager_for(cfg.cgroups_path, cid, systemd)
    if os.geteuid() == 0 or rootless == "false":
        return mgr
    from . import userns  # noqa: PLC0415
    mgr = userns.delegated_cgroup(cfg.cgroups_path, cid)
    if mgr is None:
        _warn_no_cgroup(cfg, "no writable delegated cgroup v2 subtree")
    return mgr


def _make_cgroup(mgr, cfg, st, rootless, res=None):
    """Create the cgroup. Rootless (--rootless true, or auto as a user without full
    privileges), a permission error leaves the container without one, as runc."""
    try:
        mgr.create()
        mgr.configure(cfg.device_rules, res)
        return mgr
    except ConchError as e:
        from . import userns  # noqa: PLC0415
        if not userns.is_permission_error(e) or not userns.is_rootless(rootless):
            if userns.is_permission_error(e) and os.geteuid() != 0:
                raise ConchError(f"{e} (with --rootless false, conch must make the "
                                 "container's cgroup)") from None
            raise
        try:
            mgr.destroy()
        except ConchError:
            pass
        _warn_no_cgroup(cfg, str(e))
    st.data["cgroup"] = None
    st.data["freezer"] = []
    st.save()
    return None


def _warn_no_cgroup(cfg, why):
    from . import userns  # noqa: PLC0415
    asked = userns.resources_asked(cfg)
    if asked:
        _warn(f"linux.resources ({', '.join(asked)}) not applied: the rootless container "
              f"has no cgroup ({why})")


def console_sockets(console_socket, pair, socks):
    """(conch's end, the process's end) for a terminal: the --console-socket
    connection (conch keeps no end), or with `pair` a socketpair through which the
    pty master comes back to conch (a foreground terminal); else (None, None).
    The sockets made are appended to `socks` for the caller to close."""
    if console_socket:
        cs = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        socks.append(cs)
        try:
            cs.connect(console_socket)
        except OSError as e:
            raise ConchError(f"connecting to console socket {console_socket}: {e.strerror}") from None
        return None, cs
    if pair:
        mine, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        socks += [mine, theirs]
        return mine, theirs
    return None, None


class Launch:
    """A container being created: the init's pid and the parent's end of the sync socket."""

    __slots__ = ("state", "pid", "sock", "cgroup", "config", "console_master")


def create(root, cid, bundle, pid_file=None, console_socket=None, no_pivot=False,
           preserve_fds=0, keep_sock=False, console_pair=False, no_new_keyring=False,
           rootless="auto", systemd_cgroup=False):
    """Create a container and leave its init waiting for start; return a Launch.

    With keep_sock the sync socket stays open (`run` starts through it). On any
    failure nothing is left: no state dir, cgroup, or process."""
    bundle = os.path.abspath(bundle or ".")
    if pid_file:
        pid_file = os.path.abspath(pid_file)  # relative to the caller's cwd
    cfg = config.load(bundle)
    proc = cfg.process
    if proc is None:
        raise ConfigError("process", "missing")
    if not cfg.has_ns("mount"):
        raise ConfigError("linux.namespaces", "a mount namespace is required")
    if no_pivot and cfg.rootfs_propagation & (sc.MS_PRIVATE | sc.MS_UNBINDABLE):
        # as runc: the old root stays under the container's, cut off from the host's
        # unmounts (conch takes unbindable as private until the root is switched)
        raise ConfigError("linux.rootfsPropagation", "[r]private and [r]unbindable are not "
                          "safe without pivot_root (--no-pivot)")
    if proc.terminal and not console_socket and not console_pair:
        raise ConchError("cannot allocate tty if conch will detach without setting console socket")
    if console_socket and not proc.terminal:
        raise ConchError("cannot use console socket if conch will not detach or allocate tty")
    filt = confinement(cfg, proc, root)
    config.warn_unknown_caps(proc)
    res = None
    if cfg.resources and cgroups.needs_resources(cfg.resources):
        from .cgroups import resources  # noqa: PLC0415 - only for configs with limits
        res = resources.parse(cfg.resources)

    st = State.claim(root, cid)
    lc = Launch()
    lc.state = st
    lc.pid = 0
    lc.sock = None
    lc.config = cfg
    lc.console_master = None
    mgr = None
    child = 0
    fds = []
    socks = []
    console_mine = None
    try:
        mgr = _cgroup_manager(cfg, cid, rootless, systemd_cgroup)
        st.data = {
            "ociVersion": cfg.oci_version, "id": cid, "pid": 0, "bundle": bundle,
            "rootfs": cfg.root, "created": utc_now(), "owner": "",
            "annotations": cfg.annotations, "cgroup": mgr.to_state() if mgr else None,
            "freezer": mgr.freezer_files if mgr else [],
            "own_pidns": cfg.has_ns("pid") and not cfg.ns_path("pid"),
            "hooks": {k: cfg.raw["hooks"][k] for k in ("poststart", "poststop")
                      if k in cfg.hooks},
        }
        if res is not None:
            st.data["resources"] = cfg.resources  # what `update` starts from
        st.save()  # before anything else exists: `delete --force` can undo a killed create
        if mgr is not None:
            mgr = _make_cgroup(mgr, cfg, st, rootless, res)

        a = _init_args(cfg, proc, mgr, preserve_fds, no_pivot, fds)
        a.seccomp = filt
        if any(m.extra or m.uid_mappings or m.gid_mappings for m in cfg.mounts):
            from . import userns  # noqa: PLC0415
            a.mount_trees = userns.idmapped_mounts(cfg, os.geteuid() != 0)
            fds.extend(a.mount_trees.values())
        if a.userns_new and os.geteuid() == 0:
            from . import userns  # noqa: PLC0415
            uid, gid = userns.host_id(cfg.uid_mappings), userns.host_id(cfg.gid_mappings)
            if uid is not None and gid is not None:
                userns.fix_stdio_owner(uid, gid)  # as runc's HostUID: the container's root
        a.keyring = None if no_new_keyring else f"_ses.{cid}"
        console_mine, a.console = console_sockets(console_socket,
                                                  proc.terminal and console_pair, socks)
        lsock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        socks.append(lsock)
        lsock.bind(_unix_path(st.dir, START_SOCK, fds))
        lsock.listen(4)
        a.listen = lsock
        parent_sock, child_sock = sync.pair()
        socks += [parent_sock, child_sock]
        a.sock = child_sock

        if a.userns_new or keep_sock:
            sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        into = mgr.clone_into() if mgr is not None else None
        child, born = _fork_init(cfg, a, parent_sock, into)
        child_sock.close()
        lsock.close()
        lc.sock = parent_sock
        lc.pid = child
        if mgr is not None:
            # what the init could not do itself (on v1 it moves itself through `tasks`)
            # nor was born into: a systemd unit, cgroup2 without clone3. It sets up its
            # namespaces and mounts meanwhile.
            mgr.join_child(child, into if born else None)
        if a.cgroup_wait:
            sync.send(parent_sock, sync.CGROUP_DONE)
        if a.console is not None:
            a.console.close()

        while True:
            kind, payload = sync.recv(parent_sock)
            if kind == sync.READY:
                break
            if kind == sync.USERMAP:
                write_idmaps(child, cfg)
                sync.send(parent_sock, sync.USERMAP_DONE)
            elif kind == sync.PID:
                lc.pid = int(payload)
            elif kind == sync.HOOKS:
                st.data["pid"] = lc.pid
                state_json = st.hook_state("creating")
                try:
                    hooks.run_all(cfg.hooks, "prestart", state_json, cwd=bundle)
                    hooks.run_all(cfg.hooks, "createRuntime", state_json, cwd=bundle)
                except ConchError as e:
                    sync.send(parent_sock, sync.ERROR, str(e))
                    raise
                sync.send(parent_sock, sync.HOOKS_DONE, state_json)
            elif kind == sync.SECCOMP:
                st.data["pid"] = lc.pid
                try:
                    filt.send_listener(int(payload), lc.pid, st.hook_state("creating"))
                except ConchError as e:
                    sync.send(parent_sock, sync.ERROR, str(e))
                    raise
                sync.send(parent_sock, sync.SECCOMP_DONE)
            elif kind == sync.ERROR:
                raise ConchError("unable to start container process: "
                                 + payload.decode(errors="replace"))
            else:
                raise ConchError("container init exited unexpectedly" + _exit_reason(child))

        if console_mine is not None:
            lc.console_master = _recv_fd(console_mine)
            console_mine.close()
        ps = proc_stat(lc.pid)
        if ps is None:
            raise ConchError("container init exited unexpectedly")
        st.data["pid"] = lc.pid
        st.data["start_time"] = ps[1]
        st.save()
        if pid_file:
            write_pid_file(pid_file, lc.pid)
        if not keep_sock:
            sync.send(parent_sock, sync.CREATED)
            parent_sock.close()
            lc.sock = None
        lc.cgroup = mgr
        return lc
    except BaseException:
        if lc.pid:
            _kill_and_reap(lc.pid, child)
        for s in socks:
            s.close()
        if mgr is not None:
            try:
                mgr.destroy()
            except ConchError:
                pass
        st.remove()
        raise
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def confinement(cfg, proc, root):
    """Before anything exists: check that the host has the LSMs the config asks
    for, and compile linux.seccomp (a conch.seccomp.Filter, or None). Neither
    module is imported for a config without labels or seccomp."""
    if proc.apparmor or proc.selinux_label or cfg.mount_label:
        from . import lsm  # noqa: PLC0415
        lsm.check(proc, cfg)
    if cfg.seccomp is None:
        return None
    from . import seccomp  # noqa: PLC0415
    return seccomp.build(cfg.seccomp, cfg.raw["linux"]["seccomp"], os.path.join(root, ".seccomp"))


def _init_args(cfg, proc, mgr, preserve_fds, no_pivot, fds):
    from .init import InitArgs
    a = InitArgs()
    a.config = cfg
    a.process = proc
    a.console = None
    a.preserve_fds = preserve_fds
    a.no_pivot = no_pivot
    a.cgroup_dirs = mgr.dirs if mgr else {}
    a.join_files = mgr.self_join_files() if mgr and mgr.self_join_file else []
    # the init waits for cgroup-done (1) before it makes its cgroup namespace when the
    # parent moves it somewhere (or when it has no cgroup to join at all), not into
    # the cgroup2 directory it is born in (_fork_init); (2) first thing, for systemd
    into = mgr.clone_into() if mgr else None
    a.cgroup_wait = 2 if mgr is not None and mgr.child_waits else int(
        bool(cfg.ns_flags(False) & sc.CLONE_NEWCGROUP) and bool(
            not a.join_files or [d for d in mgr.parent_join_dirs() if d != into]))
    a.userns_new = cfg.has_ns("user") and not cfg.ns_path("user")
    a.mount_trees = None
    a.hook_state = ""
    order = ("user", "ipc", "uts", "network", "cgroup", "mount")
    a.ns_fds = []
    for typ in order:
        path = cfg.ns_path(typ)
        if path:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                i = [t for t, _ in cfg.namespaces].index(typ)
                raise ConfigError(f"linux.namespaces[{i}].path", f"{path}: {e.strerror}") from None
            fds.append(fd)
            a.ns_fds.append((typ, fd))
    return a


def _fork_init(cfg, a, parent_sock, into=None):
    """Fork the init. Without a new user namespace the pid (and time) namespace is
    made here, in the parent, so that the forked child is its pid 1; the parent
    then returns to its own pid namespace before it forks anything else (hooks).
    With `into` (a cgroup2 directory) the child is born there (clone3 with
    CLONE_INTO_CGROUP); where the kernel refuses, a plain fork, and the parent
    moves it. Returns (pid, born in `into`)."""
    from . import init
    pidns = cfg.ns_path("pid")
    restore = []
    if not a.userns_new:
        flags = cfg.ns_flags(False) & (sc.CLONE_NEWPID | sc.CLONE_NEWTIME)
        if flags or pidns:
            for name in ("pid", "time"):
                restore.append(os.open(f"/proc/self/ns/{name}_for_children"
                                       if name == "time" else f"/proc/self/ns/{name}",
                                       os.O_RDONLY | os.O_CLOEXEC))
        if flags:
            sc.unshare(flags)
            if flags & sc.CLONE_NEWTIME:
                sc.write_time_offsets(cfg.time_offsets)
        if pidns:
            fd = os.open(pidns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.setns(fd, sc.CLONE_NEWPID, f"pid namespace {pidns}")
            finally:
                os.close(fd)
    born = False
    try:
        pid = -1
        if into is not None:
            pid, born = _clone_into(into)
            if not born:  # the parent moves the child, so a cgroup namespace waits for it
                a.cgroup_wait = int(bool(cfg.ns_flags(False) & sc.CLONE_NEWCGROUP))
        if pid < 0:
            pid = os.fork()
        if pid == 0:
            parent_sock.close()
            for fd in restore:
                os.close(fd)
            init.main(a)  # never returns
    finally:
        for fd, nstype in zip(restore, (sc.CLONE_NEWPID, sc.CLONE_NEWTIME)):
            try:
                sc.setns(fd, nstype, "own namespace")
            except OSError:
                pass
            os.close(fd)
    return pid, born


def _clone_into(path):
    """fork() into a cgroup2 directory: (pid, True); (-1, False) when it cannot be done
    (kernel before 5.7, a seccomp filter that refuses clone3): nothing was forked."""
    try:
        cgfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return -1, False
    try:
        return sc.fork_into_cgroup(cgfd), True
    except OSError:
        return -1, False
    finally:
        os.close(cgfd)


def _recv_fd(sock):
    import array  # noqa: PLC0415 - only for a terminal in `run`
    fds = array.array("i")
    msg, anc, _, _ = sock.recvmsg(4096, _socket.CMSG_SPACE(fds.itemsize))
    for level, typ, data in anc:
        if level == _socket.SOL_SOCKET and typ == _socket.SCM_RIGHTS:
            fds.frombytes(data[:fds.itemsize])
    if not fds:
        raise ConchError("the container init sent no terminal")
    return fds[0]


def _exit_reason(child):
    try:
        pid, status = os.waitpid(child, os.WNOHANG)
    except ChildProcessError:
        return ""
    if pid == 0:
        return ""
    code = os.waitstatus_to_exitcode(status)
    return f" (exit status {code})" if code >= 0 else f" (signal {-code})"


def _kill_and_reap(pid, child):
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass
    for p in {pid, child}:
        if not p:
            continue
        try:
            os.waitpid(p, 0)
        except ChildProcessError:
            _wait_gone(p)
