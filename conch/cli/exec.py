"""conch exec: run a new process inside a running container (runc's and runsc's flags)."""

from .. import _os as os

from .. import config, execute, foreground, jsonlite
from ..container import write_pid_file
from ..errors import ConfigError
from .args import BOOL, INT, LIST, OBOOL, STR, min_args, parse

HELP = """\
NAME:
   conch exec - execute new process inside the container

USAGE:
   conch exec [command options] <container-id> <command> [command options]  || -p process.json <container-id>

Where "<container-id>" is the name for the instance of the container and
"<command>" is the command to be executed in the container.
"<command>" can't be empty unless a "-p" flag provided.

EXAMPLE:
For example, if the container is configured to run the linux ps command the
following will output a list of processes running in the container:

       # conch exec <container-id> ps

OPTIONS:
   --console-socket value       path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
   --cwd value                  current working directory in the container
   --env value, -e value        set environment variables (later ones win)
   --tty, -t                    allocate a pseudo-TTY
   --user value, -u value       UID (format: <uid>[:<gid>])
   --additional-gids value, -g value  additional gids (repeat, or comma-separated)
   --process value, -p value    path to the process.json
   --detach, -d                 detach from the container's process
   --pid-file value             specify the file to write the process id to
   --internal-pid-file value    write the process id as the container sees it (runsc)
   --process-label value        set the asm process label for the process commonly used with selinux
   --apparmor value             set the apparmor profile for the process
   --no-new-privs               set the no new privileges value for the process
   --cap value, -c value        add a capability to the bounding, effective, permitted and ambient sets
   --preserve-fds value         pass N additional file descriptors to the process (default: 0)
   --pass-fd value              host fd M becomes fd N in the process, as M:N (runsc; repeatable)
   --exec-fd value              execute the binary behind this host fd instead of args[0] (runsc)
   --cgroup value               run the process in an (existing) sub-cgroup: [<controller>:]<path>
   --ignore-paused              allow exec in a paused container
"""

SPEC = {
    "--console-socket": ("console_socket", STR),
    "--cwd": ("cwd", STR),
    "--env": ("env", LIST), "-e": ("env", LIST),
    "--tty": ("tty", BOOL), "-t": ("tty", BOOL),
    "--user": ("user", STR), "-u": ("user", STR),
    "--additional-gids": ("gids", LIST), "-g": ("gids", LIST),
    "--process": ("process", STR), "-p": ("process", STR),
    "--detach": ("detach", BOOL), "-d": ("detach", BOOL),
    "--pid-file": ("pid_file", STR),
    "--internal-pid-file": ("internal_pid_file", STR),
    "--process-label": ("process_label", STR),
    "--apparmor": ("apparmor", STR),
    "--no-new-privs": ("no_new_privs", OBOOL),
    "--cap": ("caps", LIST), "-c": ("caps", LIST),
    "--preserve-fds": ("preserve_fds", INT),
    "--pass-fd": ("pass_fd", LIST),
    "--exec-fd": ("exec_fd", INT),
    "--cgroup": ("cgroup", STR),
    "--ignore-paused": ("ignore_paused", BOOL),
    "--no-subreaper": ("no_subreaper", BOOL),
}


def _int(value, what):
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(what, f"expected integer, got {value!r}") from None
    if not 0 <= n <= 0xFFFFFFFF:
        raise ConfigError(what, f"{n} is out of range")
    return n


def process_from_flags(base_raw, o, args):
    """The container's process (from its config.json) with exec's flags applied."""
    raw = dict(base_raw, args=args)
    proc = config.parse_process(raw, "process")
    if o["cwd"]:
        if not o["cwd"].startswith("/"):
            raise ConfigError("--cwd", f"must be an absolute path, got {o['cwd']!r}")
        proc.cwd = o["cwd"]
    proc.env = list(proc.env) + o["env"]
    proc.terminal = o["tty"]  # as runc: the container's own terminal setting is not inherited
    if o["user"]:
        uid, sep, gid = o["user"].partition(":")
        proc.user.uid = _int(uid, "--user")  # numbers only: no lookup of names (CVE-2016-3697)
        if sep:
            proc.user.gid = _int(gid, "--user")
    if o["gids"]:
        proc.user.additional_gids = list(proc.user.additional_gids) + [  # appended, as runc
            _int(g, "--additional-gids") for v in o["gids"] for g in v.split(",") if g]
    if o["caps"]:
        # as runc: the names as given (CAP_NET_RAW; an unknown one, NET_RAW included, is
        # ignored with the config's in one warning)
        unknown = set(proc.unknown_caps)
        add = config.cap_mask({"cap": o["caps"]}, "cap", "--cap", unknown)
        proc.unknown_caps = sorted(unknown)
        b, e, p, inh, a = proc.caps or (0, 0, 0, 0, 0)
        proc.caps = (b | add, e | add, p | add, inh, a | add)  # never inheritable (CVE-2022-29162)
    if o["no_new_privs"] is not None:
        # as runc: given (--no-new-privs, --no-new-privs=false), it overrides the config
        proc.no_new_privileges = o["no_new_privs"]
    if o["apparmor"]:
        proc.apparmor = o["apparmor"]
    if o["process_label"]:
        proc.selinux_label = o["process_label"]
    return proc


def process_from_file(path):
    try:
        with open(path, "rb") as f:
            raw = jsonlite.loads(f.read())
    except OSError as e:
        raise ConfigError("--process", f"{path}: {e.strerror}") from None
    except jsonlite.JSONError as e:
        raise ConfigError("--process", f"{path}: invalid JSON: {e}") from None
    return config.parse_process(raw, "process")


def _pass_fds(values):
    out = []
    for v in values:
        m, sep, n = v.partition(":")
        if not sep or not m.isdigit() or not n.isdigit():
            raise ConfigError("--pass-fd", f"expected M:N (host fd:container fd), got {v!r}")
        out.append((int(m), int(n)))
    return out


def _check_open(fd, what):
    """The fds to pass must be the caller's, checked before conch opens any of its own:
    a number that is not open would otherwise pass whatever conch opens there."""
    try:
        os.fstat(fd)
    except OSError:
        raise ConfigError(what, f"fd {fd} is not open") from None


def run(ctx, argv):
    o, pos = parse(argv, SPEC, stop_at_first_positional=True)
    min_args(pos, "exec", 1)
    cid, args = pos[0], pos[1:]
    if not o["process"] and not args:
        raise execute.ExecError("process args cannot be empty")
    pass_fds = _pass_fds(o["pass_fd"])
    for fd in range(3, 3 + (o["preserve_fds"] or 0)):
        _check_open(fd, "--preserve-fds")
    for m, _ in pass_fds:
        _check_open(m, "--pass-fd")
    if o["exec_fd"] is not None:
        _check_open(o["exec_fd"], "--exec-fd")
    st = execute.load(ctx.root, cid, o["ignore_paused"])
    cfg, _ = execute.container_process(st)
    proc = (process_from_file(o["process"]) if o["process"]
            else process_from_flags(cfg.raw["process"], o, args))
    config.warn_unknown_caps(proc)
    detach = o["detach"]
    if not detach:
        foreground.block_signals()
    try:
        ex = execute.start(st, cfg, proc, console_socket=o["console_socket"],
                           console_pair=not detach and not o["console_socket"],
                           preserve_fds=o["preserve_fds"] or 0, pass_fds=pass_fds,
                           exec_fd=o["exec_fd"], cgroup_sub=o["cgroup"], detach=detach)
    except BaseException:
        if not detach:
            foreground.unblock_signals()
        raise
    if o["internal_pid_file"]:
        write_pid_file(o["internal_pid_file"], execute.internal_pid(ex.pid))
    if o["pid_file"]:
        write_pid_file(o["pid_file"], ex.pid)
    if detach:
        return 0
    code = foreground.wait(ex.pid, ex.console_master)
    if ex.console_master is not None:
        os.close(ex.console_master)
    return code
