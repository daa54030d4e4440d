"""The conch command line: global flags, then one module per command.

Only the module of the command given is imported. Errors are reported as runc
reports them, because engines match their text: with --log, the bare message
on stderr and one line in the log file (JSON {"level","msg","time"} or
logrus text); without --log, a logrus text line on stderr.
"""

from .. import _os as os
import sys
import time

from ..errors import ConchError
from .args import BOOL, STR, UsageError, parse

COMMANDS = ("create", "start", "run", "state", "list", "kill", "delete", "spec",
            "features", "ps", "exec", "pause", "resume", "update", "events",
            "checkpoint", "restore")
IMPLEMENTED = ("create", "start", "run", "state", "list", "kill", "delete", "spec",
               "features", "exec", "ps", "pause", "resume", "update", "events")

GLOBAL = {
    "--root": ("root", STR),
    "--log": ("log", STR),
    "--log-format": ("log_format", STR),
    "--debug": ("debug", BOOL),
    "--systemd-cgroup": ("systemd_cgroup", BOOL),
    "--rootless": ("rootless", STR),
    "--criu": ("criu", STR),
    "--version": ("version", BOOL),
    "-v": ("version", BOOL),
    "--help": ("help", BOOL),
    "-h": ("help", BOOL),
}

USAGE = """\
NAME:
   conch - an OCI container runtime, in Python

USAGE:
   conch [global options] command [command options] [arguments...]

COMMANDS:
   create     create a container
   start      executes the user defined process in a created container
   run        create and run a container
   state      output the state of a container
   list       lists containers started by conch with the given root
   kill       kill sends the specified signal (default: SIGTERM) to the container's init process
   delete     delete any resources held by the container often used with detached container
   spec       create a new specification file
   features   show the enabled features
   exec       execute new process inside the container
   ps         list the processes of a container
   pause      freeze every process of a container
   resume     thaw a paused container
   update     change a container's cgroup limits
   events     stream a container's resource usage and OOM kills (or print the usage once)

GLOBAL OPTIONS:
   --root value        root directory for storage of container state (default: "/run/conch")
   --log value         set the log file to write conch logs to (default is '/dev/stderr')
   --log-format value  set the log format ('text' (default), or 'json') (default: "text")
   --debug             enable debug logging
   --systemd-cgroup    put the container in a systemd transient scope; linux.cgroupsPath is then "slice:prefix:name" (default "system.slice:conch:<id>")
   --rootless value    ignore cgroup permission errors ('true', 'false', or 'auto') (default: "auto")
   --criu value        path to the criu binary used for checkpoint and restore (default: "criu")
   --help, -h          show help
   --version, -v       print the version
"""


# --rootless: "auto", or a boolean as Go's strconv.ParseBool reads it (as runc)
_ROOTLESS = {"auto": "auto", **{v: "true" for v in ("1", "t", "T", "TRUE", "true", "True")},
             **{v: "false" for v in ("0", "f", "F", "FALSE", "false", "False")}}


# the global flags a command gets (ctx.root, ctx.log, ...): a SimpleNamespace, the type
# of sys.implementation (no class statement to run, nothing to import)
_Namespace = type(sys.implementation)


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _logfmt(level, msg):
    q = msg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'time="{_now()}" level={level} msg="{q}"\n'


def log(ctx, level, msg):
    if ctx is not None and ctx.log:
        if ctx.log_format == "json":
            from .. import jsonlite
            line = jsonlite.dumps({"level": level, "msg": msg, "time": _now()}) + "\n"
        else:
            line = _logfmt(level, msg)
        try:
            fd = os.open(ctx.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError:
            pass
        if level == "error":
            os.write(2, (msg + "\n").encode())
    else:
        os.write(2, _logfmt(level, msg).encode())


def version_text():
    from .. import SPEC_VERSION, __version__
    return (f"conch version {__version__}\ncommit: {_commit()}\nspec: {SPEC_VERSION}\n"
            f"python: {sys.version.split()[0]}\n")


def _commit():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        with open(os.path.join(here, "COMMIT"), "r") as f:
            return f.read().strip()
    except OSError:
        pass
    try:
        with open(os.path.join(os.path.dirname(here), ".git", "HEAD")) as f:
            head = f.read().strip()
        if head.startswith("ref: "):
            with open(os.path.join(os.path.dirname(here), ".git", head[5:])) as f:
                return f.read().strip()[:12]
        return head[:12]
    except OSError:
        return "unknown"


def main(argv=None):
    """Run the command line and leave the process with its exit status, skipping the
    interpreter's teardown (5M instructions, 2 ms): everything is written or closed."""
    try:
        rc = _main(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1 if e.code else 0
    sys.stdout.flush()
    os._exit(rc or 0)


def _main(argv):
    ctx = _Namespace(root=None, log=None, log_format="text", debug=False,
                     systemd_cgroup=False, rootless="auto", criu="criu")
    try:
        g, rest = parse(argv, GLOBAL, stop_at_first_positional=True)
    except UsageError as e:
        os.write(1, f"Incorrect Usage. {e}\n\n{USAGE}".encode())  # as runc (urfave/cli)
        log(None, "error", str(e))
        sys.exit(1)
    ctx.log = g["log"]
    ctx.log_format = g["log_format"] or "text"
    ctx.debug = g["debug"]
    ctx.systemd_cgroup = g["systemd_cgroup"]
    ctx.rootless = _ROOTLESS.get(g["rootless"] or "auto")
    if ctx.rootless is None:
        log(None, "error", f"invalid --rootless value {g['rootless']}: expected true, false "
                           "or auto")
        sys.exit(1)
    ctx.criu = g["criu"] or "criu"
    if ctx.log_format not in ("text", "json"):
        log(None, "error", f"unknown log-format {ctx.log_format!r}")
        sys.exit(1)
    if g["version"]:
        os.write(1, version_text().encode())
        sys.exit(0)
    if not rest or g["help"] and not rest:
        os.write(1, USAGE.encode())
        sys.exit(0)
    cmd, args = rest[0], rest[1:]
    if cmd == "help":
        cmd, args = (args[0], ["--help"]) if args else ("", [])
        if not cmd:
            os.write(1, USAGE.encode())
            sys.exit(0)
    if cmd not in COMMANDS:
        log(ctx, "error", f"No help topic for '{cmd}'\n")  # runc's (urfave's) text and status
        sys.exit(3)
    if cmd not in IMPLEMENTED:
        log(ctx, "error", f"{cmd}: not implemented yet in conch")
        sys.exit(1)
    from ..state import default_root
    try:
        ctx.root = os.path.abspath(g["root"]) if g["root"] else default_root()
    except ConchError as e:
        log(ctx, "error", str(e))
        sys.exit(1)
    mod = __import__(f"conch.cli.{cmd}", fromlist=["run"])
    if "--help" in args or "-h" in args:
        os.write(1, mod.HELP.encode())
        sys.exit(0)
    from .. import errors
    errors.warn = lambda msg: log(ctx, "warning", msg)  # runc's logrus warnings
    try:
        rc = mod.run(ctx, args)
    except UsageError as e:
        # as runc: "Incorrect Usage" and the command's help on stdout, the error, status 1
        os.write(1, (e.usage + mod.HELP).encode())
        log(ctx, "error", str(e))
        rc = 1
    except ConchError as e:
        msg = str(e)
        if cmd in ("create", "run"):
            msg = f"conch {cmd} failed: {msg}"
        elif cmd == "exec":
            msg = f"exec failed: {msg}"
        log(ctx, "error", msg)
        rc = 255 if cmd == "exec" else 1  # as runc: a failed exec exits 255
    except OSError as e:
        # a system call failed outside the places that name it: still one line
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        log(ctx, "error", f"{e.strerror or e}{where}")
        rc = 1
    except KeyboardInterrupt:
        rc = 130
    return rc
