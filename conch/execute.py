"""exec: start a new process inside a running container.

The process joins every namespace of the container's init, read from
/proc/PID/ns (the user namespace first, the mount namespace last), and its
cgroup; it gets the process's capabilities, rlimits, user, groups, umask,
no_new_privs and terminal through the same steps as the container's init
(init.prepare_process, init.execve).

As for `create`, the pid and time namespaces are joined by conch itself just
before the fork (setns to them applies to children), so the forked child is
already inside them; conch then returns to its own. conch makes itself
non-dumpable before that, so the child is born non-dumpable, before it joins
anything (CVE-2016-9962): processes in the container cannot ptrace it or open
/proc/PID/exe, the host interpreter (CVE-2019-5736). The child closes every
fd but stdio, the ones asked for and its own (moved above those) first thing,
so no stray fd of the caller can be reached through /proc/self/fd as the cwd
or the executable (CVE-2024-21626).

The sync socket is close-on-exec in the child: conch reads EOF when execve
succeeded, or the error.
"""

import _socket
from . import _os as os

from . import cgroups, config, init, sync
from . import syscalls as sc
from .errors import ConchError
from .container import console_sockets
from .state import State

# the order in which namespaces are joined: user first (it owns the others),
# mount last (after it, paths are the container's)
JOIN_ORDER = ("user", "ipc", "uts", "network", "cgroup", "mount")


class ExecError(ConchError):
    """exec failed; runc exits 255 then (engines tell it from the process's own status)."""

    exit_code = 255


class Exec:
    """A started exec process: its host pid and, for a foreground terminal, the pty master."""

    __slots__ = ("pid", "console_master", "state")


def check_status(st, ignore_paused):
    status = st.status()
    if status == "stopped":
        raise ExecError("cannot exec in a stopped container")
    if status == "paused" and not ignore_paused:
        raise ExecError("cannot exec in a paused container (use --ignore-paused to override)")
    return status


def container_process(st):
    """The container's own process settings, the base for `exec` with flags."""
    cfg = config.load(st.data["bundle"])
    if cfg.process is None:
        raise ExecError("the container's config.json has no process")
    return cfg, cfg.process


def start(st, cfg, proc, console_socket=None, console_pair=False, preserve_fds=0,
          pass_fds=(), exec_fd=None, cgroup_sub=None, detach=False):
    """Fork the exec process into the container; return an Exec once it has exec'd."""
    if proc.terminal and not console_socket and not console_pair:
        raise ExecError("cannot allocate tty if conch will detach without setting console socket")
    if console_socket and not proc.terminal:
        raise ExecError("cannot use console socket if conch will not detach or allocate tty")
    from .container import confinement  # noqa: PLC0415
    filt = confinement(cfg, proc, st.root)  # LSM labels there, linux.seccomp compiled
    base = cfg.process
    if base is not None and base is not proc:
        # as runc: a process.json without them gets the container's (its config.json's)
        for f in ("io_priority", "scheduler", "exec_cpu_affinity"):
            if getattr(proc, f) is None:
                setattr(proc, f, getattr(base, f))
    affinity = proc.exec_cpu_affinity
    pid = st.pid
    fds = []
    socks = []
    child = 0
    # before the fork into the container's pid namespace: the child is never dumpable there
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    try:
        pidfd = os.pidfd_open(pid)
        fds.append(pidfd)
        ns = {}
        for typ, _ in cfg.namespaces:
            name = config.NAMESPACES[typ][1]
            try:
                ns[typ] = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                hint = ""
                if e.errno == 13 and os.geteuid() != 0 and st.status() == "created":
                    hint = (" (a rootless container's init is not dumpable until it starts:"
                            " exec needs a started container)")
                raise ExecError(f"joining the container's {typ} namespace: {e.strerror}"
                                + hint) from None
            fds.append(ns[typ])
        # the fds are of the init we recorded, not of a process that reused its pid
        if not st.alive():
            raise ExecError("cannot exec in a stopped container")

        mgr = cgroups.Manager.from_state(st.data.get("cgroup"))
        dirs = _exec_cgroup_dirs(mgr, cgroup_sub)
        a = init.InitArgs()
        a.process = proc
        a.seccomp = filt
        a.preserve_fds = preserve_fds
        a.join_files = [os.path.join(d, mgr.self_join_file) for n, d in dirs.items() if n] \
            if mgr and mgr.self_join_file else []
        # where conch moves the process by pid: cgroup2 (all of v2, the unified
        # directory of a hybrid host), a systemd unit's directories
        parent_dirs = [] if mgr is None else [d for n, d in dirs.items() if not n] \
            if mgr.self_join_file else list(dirs.values())
        a.cgroup_wait = bool(parent_dirs)
        console_mine, a.console = console_sockets(console_socket, proc.terminal, socks)
        parent_sock, child_sock = sync.pair()
        socks += [parent_sock, child_sock]
        a.sock = child_sock

        # Unprivileged (rootless), conch may not join the pid and time namespaces: they
        # belong to the container's user namespace. The child joins them after that one
        # and forks the process; it reports its pid (2: after the cgroup move, v2).
        late = 0
        if "user" in ns and os.geteuid() != 0:
            late = 2 if mgr is not None and not mgr.self_join_file and "cgroup" not in ns else 1
            sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)  # the process is our grandchild
        # the child is born in its cgroup2 directory (clone3), unless it cannot be
        # (systemd moves nothing itself; rootless forks late): nothing to move or wait for
        into = dirs.get("") if mgr is not None and mgr.clone_into() and not late else None
        if into is not None:
            a.cgroup_wait = any(d != into for d in parent_dirs)
        restore = []
        for typ, nstype in (("pid", sc.CLONE_NEWPID), ("time", sc.CLONE_NEWTIME)):
            if typ in ns and not late:
                own = "pid" if typ == "pid" else "time_for_children"
                restore.append((os.open(f"/proc/self/ns/{own}", os.O_RDONLY | os.O_CLOEXEC), nstype))
                fds.append(restore[-1][0])
                sc.setns(ns[typ], nstype, f"the container's {typ} namespace")
        saved_cpus = None
        try:
            if affinity is not None and affinity[0] is not None:
                # execCPUAffinity.initial: the CPUs the process runs on before it is in the
                # container's cgroup. conch takes them for the fork, so that the child has
                # them from birth (clone3 makes it in the cgroup), and takes its own back.
                saved_cpus = os.sched_getaffinity(0)
                try:
                    sc.sched_setaffinity(affinity[0], affinity[2])
                except OSError as e:
                    saved_cpus = None
                    raise ExecError(f"process.execCPUAffinity.initial: {e}") from None
            child = -1
            if into is not None:
                from .container import _clone_into  # noqa: PLC0415
                child, born = _clone_into(into)
                if born:
                    parent_dirs = [d for d in parent_dirs if d != into]
                else:  # an old kernel, a seccomp filter: fork, conch moves the child
                    a.cgroup_wait = bool(parent_dirs)
            if child < 0:
                child = os.fork()
            if child == 0:
                parent_sock.close()
                if console_mine is not None:
                    console_mine.close()
                _child(a, cfg, ns, pass_fds, exec_fd, late)  # never returns
        finally:
            if saved_cpus is not None:
                os.sched_setaffinity(0, saved_cpus)
            for fd, nstype in restore:
                sc.setns(fd, nstype, "conch's own namespace")
        child_sock.close()
        if a.console is not None:
            a.console.close()
        for d in parent_dirs:
            cgroups._write(os.path.join(d, "cgroup.procs"), child)
        if parent_dirs:
            sync.send(parent_sock, sync.CGROUP_DONE)

        ex = Exec()
        ex.pid = child
        ex.state = st
        ex.console_master = None
        if late:
            kind, payload = sync.recv(parent_sock)
            if kind != sync.PID:
                raise ExecError(payload.decode(errors="replace") if kind == sync.ERROR
                                else "the exec process exited unexpectedly")
            os.waitpid(child, 0)  # the intermediate, gone once it has told the pid
            child = ex.pid = int(payload)
        if console_mine is not None:
            from .container import _recv_fd
            ex.console_master = _recv_fd(console_mine)
        while True:
            kind, payload = sync.recv(parent_sock)
            if kind != sync.SECCOMP:
                break
            try:  # SCMP_ACT_NOTIFY: the listener fd, for linux.seccomp.listenerPath
                filt.send_listener(int(payload), ex.pid, st.hook_state(st.status()))
            except ConchError as e:
                sync.send(parent_sock, sync.ERROR, str(e))
                raise ExecError(str(e)) from None
            sync.send(parent_sock, sync.SECCOMP_DONE)
        if kind is not None:
            raise ExecError(sync.error_text(payload) if kind == sync.ERROR
                            else "unexpected message from the exec process")
        return ex
    except BaseException:
        if child:
            try:
                os.kill(child, 9)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(child, 0)
            except ChildProcessError:
                pass
        raise
    finally:
        for s in socks:
            s.close()
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def _exec_cgroup_dirs(mgr, sub):
    """The cgroup directories the process joins: the container's, or with --cgroup
    a sub-cgroup ([controller:]path) of it, which must exist."""
    if mgr is None:
        return {}
    dirs = dict(mgr.dirs)
    if not sub:
        return dirs
    ctrl, sep, path = sub.rpartition(":")
    if ".." in path.split("/") or path.startswith("/"):
        raise ExecError(f"--cgroup: {sub!r}: the path must be relative and inside the container's cgroup")
    names = [n for n in dirs if not sep or ctrl in n.split(",")] if sep else list(dirs)
    if sep and not names:
        raise ExecError(f"--cgroup: {sub!r}: the container has no {ctrl} controller")
    for n in names:
        d = os.path.join(dirs[n], path)
        if not os.path.isdir(d):
            raise ExecError(f"--cgroup: {sub!r}: {d} does not exist")
        dirs[n] = d
    return dirs


def _child(a, cfg, ns, pass_fds, exec_fd, late=0):
    """In the forked child: join, set up, exec. Never returns."""
    try:
        sc.set_name(b"conch:exec")  # non-dumpable since before the fork (see start)
        keep = list(range(3, 3 + a.preserve_fds)) + [n for _, n in pass_fds]
        ns, exec_fd = _arrange_fds(a, ns, pass_fds, exec_fd, keep)
        for path in a.join_files:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        if a.cgroup_wait and late != 2:
            # conch moves us into the cgroup2 directory: wait, or the program could run
            # (and fork) outside it (rootless, _join_late waits instead)
            kind, payload = sync.recv(a.sock)
            if kind != sync.CGROUP_DONE:
                raise ConchError("conch went away")
        for typ in JOIN_ORDER:
            if typ in ns:
                sc.setns(ns[typ], config.NAMESPACES[typ][0], f"the container's {typ} namespace")
        if late:
            _join_late(a, ns, late)
        proc = a.process
        if proc.exec_cpu_affinity is not None and proc.exec_cpu_affinity[1] is not None:
            # execCPUAffinity.final: in the cgroup now; before the scheduler (a
            # SCHED_DEADLINE task may not narrow its affinity)
            try:
                sc.sched_setaffinity(proc.exec_cpu_affinity[1], proc.exec_cpu_affinity[3])
            except OSError as e:
                raise ConchError(f"process.execCPUAffinity.final: {e}") from None
        init.set_rlimits(proc.rlimits)
        console = None
        if proc.terminal and a.console is not None:
            console = init.setup_console(a.console, proc.console_size, bind_console=False)
            a.console.close()
        init.fix_stdio_permissions(proc.user.uid, console)
        if exec_fd is not None:
            # runsc's --exec-fd: run the binary behind a host fd, not args[0]
            _, env = init.prepare_process(proc, "user" in ns, find_exe=False,
                                          seccomp=a.seccomp, sock=a.sock,
                                          personality=cfg.personality)
            exe = exec_fd
        else:
            exe, env = init.prepare_process(proc, "user" in ns, seccomp=a.seccomp, sock=a.sock,
                                            personality=cfg.personality)
        init.execve(exe, proc.args, env, console, keep, a.sock)
    except BaseException as e:  # noqa: B902 - report everything, then exit
        try:
            sync.send(a.sock, sync.ERROR, init.message(e))
        except BaseException:  # noqa: B902
            pass
    os._exit(127)


def _join_late(a, ns, late):
    """Rootless: join the pid and time namespaces from inside the container's user
    namespace, fork the process into them, report its pid and leave."""
    for typ, nstype in (("pid", sc.CLONE_NEWPID), ("time", sc.CLONE_NEWTIME)):
        if typ in ns:
            sc.setns(ns[typ], nstype, f"the container's {typ} namespace")
    if late == 2:
        kind, _ = sync.recv(a.sock)  # conch moves us into the cgroup first (v2)
        if kind != sync.CGROUP_DONE:
            raise ConchError("conch went away")
    pid = os.fork()
    if pid:
        sync.send(a.sock, sync.PID, str(pid))
        os._exit(0)


def _arrange_fds(a, ns, pass_fds, exec_fd, keep):
    """In the child: move our own fds (namespaces, sockets, --exec-fd) above every
    number in `keep`, make each --pass-fd M fd N, and close all the rest now.
    Returns the namespace fds and the exec fd as moved."""
    floor = max(keep, default=2) + 1

    def above(fd):
        return sc.fcntl(fd, sc.F_DUPFD_CLOEXEC, floor)

    ns = {typ: above(fd) for typ, fd in ns.items()}
    a.sock = _socket.socket(fileno=above(a.sock.detach()))
    ours = set(ns.values()) | {a.sock.fileno()}
    if a.console is not None:
        a.console = _socket.socket(fileno=above(a.console.detach()))
        ours.add(a.console.fileno())
    if exec_fd is not None:
        exec_fd = above(exec_fd)
        ours.add(exec_fd)
    # host fd M becomes fd N: every M is copied out of the way first
    for tmp, n in [(above(m), n) for m, n in pass_fds]:
        os.dup2(tmp, n, inheritable=True)
    lo = 3
    for fd in sorted(ours.union(keep)):
        if fd >= lo:
            if fd > lo:
                sc.close_range(lo, fd - 1)
            lo = fd + 1
    sc.close_range(lo)
    return ns, exec_fd


def internal_pid(pid):
    """The pid as the container sees it (the last NSpid of /proc/PID/status)."""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"NSpid:"):
                return int(line.split()[-1])
    return pid


def load(root, cid, ignore_paused=False):
    st = State.load(root, cid)
    check_status(st, ignore_paused)
    return st
