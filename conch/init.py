"""The container init: what the child forked by `conch create` does, up to execve.

There is no re-exec: the child is a fork of the warm conch process, so
everything it will use is imported by then. This module imports all it needs
at its top, and nothing here imports, loads a library or looks up a user by
name after pivot_root: the container's root is hostile ground (see
docs/SECURITY.md). The child is made non-dumpable first thing, so processes in
the container cannot ptrace it or open /proc/PID/exe, the host interpreter.

The steps, and the messages they exchange with the parent (conch/sync.py):
join namespaces given by path, create the user namespace
(the parent writes the id maps), create the others (the pid namespace's init
is forked here when a user namespace owns it), mounts and /dev, prestart and
createRuntime hooks (run by the parent), createContainer hooks, the cgroup
namespace (once the parent has moved us into the cgroup), pivot_root,
console, masked and read-only paths, sysctls, rlimits, user, capabilities,
cwd, no_new_privs, "ready"; then wait for start, startContainer hooks,
close every fd not asked for, reset signals, execve.
"""

import _signal
import _socket
from . import _os as os
import _stat as stat  # the C module: stat.py would be one more import

from . import hooks, rootfs, sync, trampoline
from . import syscalls as sc
from .config import NAMESPACES, RLIMITS
from .errors import ConchError

SIG_DFL = _signal.SIG_DFL
NSIG = _signal.NSIG


class InitArgs:
    __slots__ = ("config", "process", "sock", "listen", "console", "preserve_fds",
                 "no_pivot", "cgroup_dirs", "join_files", "cgroup_wait", "keyring", "userns_new", "hook_state",
                 "ns_fds", "fds_to_close", "mount_trees", "seccomp")


def message(e):
    """One line for an exception raised in the init."""
    if isinstance(e, ConchError) or isinstance(e, sc.SyscallError):
        return str(e)
    if isinstance(e, OSError):
        where = f" {e.filename}" if e.filename else ""
        return f"{e.strerror or e}{':' if where else ''}{where}".strip()
    return f"{type(e).__name__}: {e}"


def _wait_cgroup(sock):
    kind, payload = sync.recv(sock)
    if kind != sync.CGROUP_DONE:
        raise ConchError(payload.decode() if kind == sync.ERROR else "parent went away")


def main(a):
    """Run the init; never returns."""
    try:
        _main(a)
    except BaseException as e:  # noqa: B902 - the init must report everything
        try:
            sync.send(a.sock, sync.ERROR, message(e))
        except BaseException:  # noqa: B902
            # nobody to tell (the parent is gone after create): stderr is the last resort
            try:
                os.write(2, f"conch init: {message(e)}\n".encode())
            except OSError:
                pass
    os._exit(1)


def _main(a):
    cfg = a.config
    proc = a.process
    sock = a.sock
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    sc.set_name(b"conch:init")
    os.umask(0)

    # v1: move ourselves into the container's cgroups (see cgroups.V1Manager)
    for path in a.join_files:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    if a.cgroup_wait == 2:
        # systemd: the cgroup is made once the parent has started our unit; nothing
        # (mounts of it included) goes on before that
        _wait_cgroup(sock)

    # namespaces given by path: the user namespace first, the mount namespace last
    for typ, fd in a.ns_fds:
        sc.setns(fd, NAMESPACES[typ][0], f"{typ} namespace {cfg.ns_path(typ)}")
        os.close(fd)

    new = cfg.ns_flags(with_path=False)
    if a.userns_new:
        unprivileged = os.geteuid() != 0  # before the unshare: then ids read as 65534
        sc.unshare(sc.CLONE_NEWUSER)
        if unprivileged:
            # the kernel gives /proc/PID of a non-dumpable process to root: an unprivileged
            # conch (or newuidmap, which checks the owner) could not write our maps
            sc.prctl(sc.PR_SET_DUMPABLE, 1)
        sync.send(sock, sync.USERMAP)
        kind, payload = sync.recv(sock)
        if unprivileged:
            sc.prctl(sc.PR_SET_DUMPABLE, 0)  # before anything of the container exists
        if kind != sync.USERMAP_DONE:
            raise ConchError(payload.decode() if kind == sync.ERROR else "parent went away")
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        sc.unshare(new & ~(sc.CLONE_NEWUSER | sc.CLONE_NEWCGROUP))
        if new & sc.CLONE_NEWTIME and cfg.time_offsets:
            # a non-dumpable process's /proc files are the host root's, which we are
            # not in this user namespace: dumpable for this one write, before the
            # container's root and before any other process of the container exists
            sc.prctl(sc.PR_SET_DUMPABLE, 1)
            try:
                sc.write_time_offsets(cfg.time_offsets)
            finally:
                sc.prctl(sc.PR_SET_DUMPABLE, 0)
        if new & (sc.CLONE_NEWPID | sc.CLONE_NEWTIME):
            pid = os.fork()  # the first child of a new pid namespace is its init
            if pid:
                sync.send(sock, sync.PID, str(pid))
                os._exit(0)
    else:
        # the parent created the pid and time namespaces (they apply to its children)
        sc.unshare(new & ~(sc.CLONE_NEWPID | sc.CLONE_NEWTIME | sc.CLONE_NEWCGROUP))

    if new & sc.CLONE_NEWNET:
        loopback_up()

    if proc.oom_score_adj is not None:
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(proc.oom_score_adj))
        except OSError as e:
            raise ConchError(f"process.oomScoreAdj: write /proc/self/oom_score_adj "
                             f"{proc.oom_score_adj}: {e.strerror.lower()}") from None
    set_rlimits(proc.rlimits)

    if a.keyring:
        # do not share the caller's session keyring with the container (as runc)
        try:
            sc.join_session_keyring(a.keyring)
        except OSError as e:
            if e.errno not in (13, 38):  # EACCES in some user namespaces, ENOSYS
                raise

    in_userns = cfg.has_ns("user")
    if new & sc.CLONE_NEWNS:
        rootfs.prepare_root(cfg)
        rootfd = os.open(cfg.root, sc.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            rootfs.mount_all(rootfd, cfg, a.cgroup_dirs, a.mount_trees)
            rootfs.setup_dev(rootfd, cfg, in_userns)
        finally:
            os.close(rootfd)
    if new & sc.CLONE_NEWUTS:
        if cfg.hostname:
            _socket.sethostname(cfg.hostname)
        if cfg.domainname:
            sc.setdomainname(cfg.domainname)

    if cfg.hooks.keys() & ("prestart", "createRuntime", "createContainer", "startContainer"):
        # the parent runs prestart and createRuntime hooks and sends the state (with our pid)
        sync.send(sock, sync.HOOKS)
        kind, payload = sync.recv(sock)
        if kind != sync.HOOKS_DONE:
            raise ConchError(payload.decode() if kind == sync.ERROR else "parent went away")
        a.hook_state = payload.decode()
    if "createContainer" in cfg.hooks:
        hooks.run_all(cfg.hooks, "createContainer", a.hook_state, cwd=cfg.bundle)

    if new & sc.CLONE_NEWCGROUP:
        # the cgroup namespace is made once we are in the container's cgroup, so that
        # its root is that cgroup; the parent moves us meanwhile where we cannot
        # (v2, the cgroup2 directory of a hybrid host, a systemd unit)
        if a.cgroup_wait == 1:
            _wait_cgroup(sock)
        sc.unshare(sc.CLONE_NEWCGROUP)

    if a.no_pivot:
        rootfs.move_root(cfg.root)
    else:
        rootfs.pivot_root(cfg.root)
    make_cwd(proc.cwd)

    # from here on the root is the container's: no imports, no library loads, no NSS
    console = None
    if proc.terminal and a.console is not None:
        console = setup_console(a.console, proc.console_size)
        a.console.close()
    rootfs.write_sysctls(cfg.sysctl)  # before /proc/sys is made read-only, as runc
    rootfs.mask_paths(cfg.masked_paths)
    rootfs.readonly_paths(cfg.readonly_paths)
    rootfs.finish_root_propagation()  # after the last bind mount (an unbindable / has none)
    if cfg.root_readonly:
        rootfs.readonly_root()

    fix_stdio_permissions(proc.user.uid, console)
    exe, env = prepare_process(proc, in_userns, seccomp=a.seccomp, sock=sock,
                               personality=cfg.personality)

    sync.send(sock, sync.READY)
    kind, payload = sync.recv(sock)
    conn = None
    if kind == sync.CREATED:
        sock.close()
        while True:
            fd, _ = a.listen._accept()  # close-on-exec, like every socket Python makes
            conn = _socket.socket(fileno=fd)
            if conn.recv(64) == sync.START:
                break
            conn.close()
    elif kind != sync.START:
        os._exit(1)  # the parent failed or died: run nothing
    if a.listen is not None:
        a.listen.close()

    if "startContainer" in cfg.hooks:
        # as runc: start is under way, the process not yet run. Not parsed: jsonlite's error
        # path imports json.decoder, which after pivot_root would come from the image (a
        # quote inside a JSON string is escaped, so this only matches the status field)
        state = a.hook_state.replace('"status":"creating"', '"status":"created"', 1)
        try:
            hooks.run_all(cfg.hooks, "startContainer", state)
        except ConchError as e:
            _report(conn or sock, str(e))
            os._exit(1)

    execve(exe, proc.args, env, console, range(3, 3 + a.preserve_fds), conn or sock)


def set_rlimits(rlimits):
    """process.rlimits, in this process; an error names the limit."""
    for res, soft, hard in rlimits:
        try:
            sc.setrlimit(res, soft, hard)
        except OSError as e:
            name = next((k for k, v in RLIMITS.items() if v == res), str(res))
            raise ConchError(f"process.rlimits: setrlimit {name} (soft {soft}, hard {hard}): "
                             f"{e.strerror.lower()}") from None


def prepare_process(proc, in_userns, find_exe=True, seccomp=None, sock=None, personality=None):
    """HOME, LSM labels, scheduling (I/O priority, scheduler, personality), cwd,
    user, capabilities, the executable, umask, no_new_privs and the seccomp filter
    (a conch.seccomp.Filter; `sock` takes the notify listener fd to conch), in
    runc's order, for a container's init or an exec'd process. Returns (exe, env)."""
    env = proc.env
    if not _envdict(env).get("HOME"):
        env = env + ["HOME=" + home_of(proc.user.uid)]  # as runc sets it
    if proc.apparmor or proc.selinux_label:
        set_exec_labels(proc)  # the LSM confines the program; exec'd directly (see execve)
    elif find_exe:
        trampoline.prepare()  # the sealed memfd, before a seccomp filter could refuse memfd_create
    if proc.io_priority is not None or proc.scheduler is not None or personality is not None:
        set_scheduling(proc, personality)
    if seccomp is not None and not proc.no_new_privileges:
        # without no_new_privs a filter needs CAP_SYS_ADMIN: before the capabilities go (runc)
        load_seccomp(seccomp, sock)
    # chdir before the user changes (a directory only root can enter) and after
    cwd_ok = _chdir(proc.cwd, must=False)
    set_user(proc, in_userns)
    if not cwd_ok:
        _chdir(proc.cwd, must=True)
    _verify_cwd()
    exe = find_executable(proc.args[0], env) if find_exe else None
    os.umask(proc.user.umask if proc.user.umask is not None else 0o022)
    if proc.no_new_privileges:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        if seccomp is not None:
            load_seccomp(seccomp, sock)  # as late as possible: few syscalls run under it (runc)
    return exe, env


def set_scheduling(proc, personality):
    """process.ioPriority, process.scheduler and linux.personality, while the process
    still has the privileges a real-time class or policy (or a lower nice) needs: before
    the user and capabilities change, and before a seccomp filter (a profile need not
    allow ioprio_set, sched_setattr or personality). All three survive execve."""
    if proc.io_priority is not None:
        cls, level, value = proc.io_priority
        try:
            sc.ioprio_set(value, f"{cls} {level}")
        except OSError as e:
            raise ConchError(f"process.ioPriority: {e}") from None
    if proc.scheduler is not None:
        name, policy, flags, nice, prio, runtime, deadline, period = proc.scheduler
        try:
            sc.sched_setattr(policy, flags, nice, prio, runtime, deadline, period, name)
        except OSError as e:
            hint = ""
            if e.errno == 1 and policy in (1, 2):
                hint = (" (a real-time policy needs CAP_SYS_NICE in the host's user namespace"
                        " and, under a cgroup v1 cpu controller with real-time group"
                        " scheduling, linux.resources.cpu.realtimeRuntime)")
            elif e.errno == 1 and policy == 6:
                hint = (" (SCHED_DEADLINE needs CAP_SYS_NICE in the host's user namespace and"
                        " every CPU of its root domain: no cpuset or CPU affinity that leaves"
                        " one out)")
            raise ConchError(f"process.scheduler: {e}{hint}") from None
    if personality is not None:
        domain, name = personality
        try:
            sc.personality(domain, name)
        except OSError as e:
            raise ConchError(f"linux.personality: {e}") from None


def load_seccomp(f, sock):
    """Load the filter conch compiled. With SCMP_ACT_NOTIFY, hand the listener fd to
    conch (it sends it to listenerPath) and wait until it has."""
    try:
        fd = sc.seccomp_filter(f.bpf, f.flags)
    except OSError as e:
        raise ConchError(f"linux.seccomp: loading the filter: {e}") from None
    if f.notify:
        try:
            sync.send_fd(sock, sync.SECCOMP, fd)
        finally:
            os.close(fd)
        kind, payload = sync.recv(sock)
        if kind != sync.SECCOMP_DONE:
            raise ConchError(payload.decode() if kind == sync.ERROR else "conch went away")


ATTR_RESOLVE = (sc.RESOLVE_BENEATH | sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_MAGICLINKS
                | sc.RESOLVE_NO_XDEV)


def set_exec_labels(proc):
    """The AppArmor profile and SELinux label for the next execve, written to this
    process's attr files under the container's /proc, which must be procfs, with no
    symlink or mount on the way (CVE-2019-16884, CVE-2023-28642). conch checked
    before the fork that the host has the LSM."""
    try:
        procfd = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise ConchError(f"/proc in the container: {e.strerror}: cannot apply LSM labels") from None
    try:
        if sc.fstatfs_type(procfd) != sc.PROC_SUPER_MAGIC:
            raise ConchError("/proc in the container is not procfs: refusing to write LSM labels")
        attr = f"{os.getpid()}/attr"
        if proc.apparmor:
            _write_attr(procfd, (attr + "/apparmor/exec", attr + "/exec"),
                        b"exec " + proc.apparmor.encode(), "process.apparmorProfile")
        if proc.selinux_label:
            _write_attr(procfd, (attr + "/exec",), proc.selinux_label.encode(),
                        "process.selinuxLabel")
    finally:
        os.close(procfd)


def _write_attr(procfd, paths, value, field):
    for i, path in enumerate(paths):
        try:
            fd = sc.openat2(procfd, path, os.O_WRONLY, 0, ATTR_RESOLVE)
        except OSError as e:
            if e.errno == 2 and i + 1 < len(paths):
                continue  # no attr/apparmor/ (before Linux 5.8): the generic file
            raise ConchError(f"{field}: /proc/self/{path.partition('/')[2]}: {e.strerror}") from None
        try:
            if sc.fstatfs_type(fd) != sc.PROC_SUPER_MAGIC:
                raise ConchError(f"{field}: /proc/self/{path.partition('/')[2]} is not on procfs")
            os.write(fd, value)
        except OSError as e:
            raise ConchError(f"{field}: writing {value.decode(errors='replace')!r}: "
                             f"{e.strerror}") from None
        finally:
            os.close(fd)
        return


def execve(exe, args, env, console, keep, report_sock):
    """Make the terminal the controlling one, leave open only stdio and `keep`,
    reset signals, exec. `exe` may be an fd (fexecve). Never returns.
    `report_sock` is close-on-exec: its peer sees EOF exactly when execve succeeds,
    and reads the error otherwise."""
    if console is not None:
        os.setsid()
        sc.ioctl(console, sc.TIOCSCTTY, 0)
        for i in range(3):
            os.dup2(console, i)
        if console > 2:
            os.close(console)
    reset_signals()
    # Close every fd but `keep`, the report socket and an exe fd. Close-on-exec is not
    # enough: execve resolves its path before it closes them, so a stray fd of a host
    # directory would still reach the host as args[0] = "/proc/self/fd/N/../..."
    # (CVE-2024-21626). The report socket and an exe fd are close-on-exec.
    tramp = trampoline.fd() if isinstance(exe, str) else None
    close_all_but(set(keep) | {report_sock.fileno()} | ({exe} if isinstance(exe, int) else set())
                  | ({tramp} if tramp is not None else set()))
    for fd in keep:
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass  # not open: nothing to pass
    envd = _envdict(env)
    if tramp is not None:
        # CVE-2019-5736: the program is exec'd by the sealed trampoline, not by python (whose
        # /proc/self/exe a "#!/proc/self/exe" script would get); it reports on report_sock
        rfd = report_sock.fileno()
        os.set_inheritable(rfd, True)
        try:
            os.execve(tramp, trampoline.argv(rfd, f"{sync.ERROR.decode()} exec {exe}: ", exe, args),
                      envd)
        except OSError:
            pass  # execveat refused (a seccomp profile without it, noexec memfds): exec directly
        os.set_inheritable(rfd, False)
    try:
        os.execve(exe, args, envd)
    except OSError as e:
        _report(report_sock, f"exec {exe}: {e.strerror}")
    os._exit(127)


def close_all_but(fds):
    """Close every fd from 3 up but `fds`."""
    ranges = []
    lo = 3
    for fd in sorted(fds):
        if fd >= lo:
            if fd > lo:
                ranges.append((lo, fd - 1))
            lo = fd + 1
    ranges.append((lo, 0xFFFFFFFF))
    for first, last in ranges:
        try:
            sc.close_range(first, last)
        except OSError:
            # close_range refused (ENOSYS from a seccomp profile older than it): one by one
            top = min(sc.getrlimit(7)[1], 1 << 16)  # RLIMIT_NOFILE
            os.closerange(first, min(last + 1, top))


def _report(sock, msg):
    try:
        sync.send(sock, sync.ERROR, msg)
    except OSError:
        pass


def _envdict(env):
    out = {}
    for e in env:
        k, sep, v = e.partition("=")
        if sep:
            out[k] = v
    return out


def home_of(uid):
    """uid's home directory from the container's /etc/passwd, parsed here (no NSS);
    "/" when the file or the entry is missing, as runc defaults it."""
    try:
        fd = os.open("/etc/passwd", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return "/"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "/"
        data = os.read(fd, 1 << 20)
    except OSError:
        return "/"
    finally:
        os.close(fd)
    want = str(uid).encode()
    for line in data.split(b"\n"):
        f = line.split(b":")
        if len(f) >= 6 and f[2] == want:
            return os.fsdecode(f[5]) or "/"
    return "/"


def make_cwd(cwd):
    """As runc: a missing cwd is created (mkdir -p, 0755) once we are in the root."""
    if os.path.isdir(cwd):
        return
    old = os.umask(0o022)  # makedirs makes the parents 0777 & ~umask
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)
    except FileExistsError:
        raise ConchError(f"process.cwd: mkdir {cwd}: not a directory") from None
    except OSError as e:
        raise ConchError(f"process.cwd: mkdir {e.filename}: {e.strerror.lower()}") from None
    finally:
        os.umask(old)


def _chdir(cwd, must):
    try:
        os.chdir(cwd)
        return True
    except OSError as e:
        if must:
            raise ConchError(f"chdir to cwd ({cwd!r}) set in config.json failed: "
                             f"{e.strerror.lower()}") from None
        return False


def _verify_cwd():
    # a cwd reached through a leaked host fd is outside the root (CVE-2024-21626)
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = ""
    if not cwd.startswith("/"):
        raise ConchError("current working directory is outside of container mount namespace "
                         "root -- possible container breakout detected")


def find_executable(name, env):
    """Resolve args[0] as Go's exec.LookPath does with the container's PATH."""
    if "/" in name:
        _check_exec(name, name)
        return name
    path = None
    for e in env:
        if e.startswith("PATH="):
            path = e[5:]
    denied = None
    for d in (path or "").split(":") if path else ():
        cand = (d or ".") + "/" + name
        try:
            _check_exec(name, cand)
            return cand
        except ConchError as e:
            if "permission denied" in str(e):
                denied = e
    if denied is not None:
        raise denied
    raise ConchError(f'exec: "{name}": executable file not found in $PATH')


def _check_exec(name, path):
    try:
        st = os.stat(path)
    except OSError as e:
        raise ConchError(f'exec: "{name}": stat {path}: {e.strerror.lower()}') from None
    if not stat.S_ISREG(st.st_mode) or not (st.st_mode & 0o111) or not os.access(path, os.X_OK):
        raise ConchError(f'exec: "{name}": permission denied')


def fix_stdio_permissions(uid, console):
    """runc's fixStdioPermissions, while we are still root: the process's stdio (the pty
    slave made for it, else fds 0-2) is given to its user (uid only; the group stays),
    so that it can reopen them (/proc/self/fd/1, /dev/stdout). Unlike runc, only what
    the caller (this process) owns and, of the caller's fds, no device: not /dev/null,
    nor a terminal of the host (runc never gives away other users' files either in the
    foreground, where it passes pipes of its own). Refusals the kernel makes when an
    owner is not mapped in our user namespace, or /dev is read-only, are ignored (runc)."""
    euid = os.geteuid()
    for fd in (console,) if console is not None else (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue  # not open
        if st.st_uid == uid or st.st_uid != euid:
            continue
        if console is None and (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            continue
        try:
            os.fchown(fd, uid, st.st_gid)
        except OSError as e:
            if e.errno not in (1, 22, 30):  # EPERM, EINVAL, EROFS
                raise ConchError(f"process.user.uid: giving stdio fd {fd} to uid {uid}: "
                                 f"{e.strerror.lower()}") from None


def set_user(proc, in_userns):
    """Bounding set, groups, uid/gid, then the other capability sets, as runc orders them."""
    caps = proc.caps
    u = proc.user
    last = sc.last_cap()
    if caps is not None:
        for c in range(last + 1):
            if not caps[0] & (1 << c):
                sc.prctl(sc.PR_CAPBSET_DROP, c)
        sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    try:
        os.setgroups(u.additional_gids)
    except PermissionError:
        if not in_userns:
            raise
    os.setresgid(u.gid, u.gid, u.gid)
    os.setresuid(u.uid, u.uid, u.uid)
    if caps is not None:
        sc.prctl(sc.PR_SET_KEEPCAPS, 0)
        mask = (1 << (last + 1)) - 1
        _, eff, perm, inh, amb = caps
        sc.capset(eff & mask, perm & mask, inh & mask)
        for c in range(last + 1):
            if amb & (1 << c):
                try:
                    sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, c)
                except OSError:
                    pass  # not in permitted and inheritable: the kernel refuses, as for runc


def reset_signals():
    """Default dispositions (Python ignores SIGPIPE and SIGXFSZ) and an empty mask."""
    for sig in range(1, NSIG):
        h = _signal.getsignal(sig)
        if h is not None and h != SIG_DFL:
            try:
                _signal.signal(sig, SIG_DFL)
            except (OSError, ValueError):
                pass
    _signal.pthread_sigmask(_signal.SIG_SETMASK, ())


def setup_console(csock, size, bind_console=True):
    """Open a pty in the container's devpts, make the slave /dev/console (for the
    init), send the master over the console socket (one message, one fd), return
    the slave fd."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if sc.fstatfs_type(master) != sc.DEVPTS_SUPER_MAGIC:
            raise ConchError("/dev/ptmx is not on a devpts filesystem")
        sc.ioctl(master, sc.TIOCSPTLCK, b"\0\0\0\0")
        # TIOCGPTPEER opens the slave through the master: no path to redirect (CVE-2025-52565)
        slave = sc.ioctl(master, sc.TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
        if size:
            rows, cols = size
            sc.ioctl(slave, sc.TIOCSWINSZ, rows.to_bytes(2, "little") + cols.to_bytes(2, "little")
                        + b"\0\0\0\0")
        if bind_console:
            _bind_console(slave)
        csock.sendmsg([b"/dev/ptmx"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                        master.to_bytes(4, "little"))])
        return slave
    finally:
        os.close(master)


def _bind_console(slave):
    """Bind the pty slave over /dev/console, a file made here and opened without
    following a symlink."""
    try:
        fd = os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.close(fd)
        target = os.open("/dev/console", sc.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            sc.mount(f"/proc/self/fd/{slave}", f"/proc/self/fd/{target}", None, sc.MS_BIND,
                     None, "/dev/console")
        finally:
            os.close(target)
    except OSError as e:
        raise ConchError(f"/dev/console: {e}") from None


def loopback_up():
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        req = bytearray(b"lo".ljust(40, b"\0"))
        sc.ioctl(s.fileno(), 0x8913, req)  # SIOCGIFFLAGS
        flags = int.from_bytes(req[16:18], "little") | 0x1  # IFF_UP
        req[16:18] = flags.to_bytes(2, "little")
        sc.ioctl(s.fileno(), 0x8914, bytes(req))  # SIOCSIFFLAGS
    finally:
        s.close()
