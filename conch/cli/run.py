"""conch run: create and start a container; in the foreground, wait for it."""

from .. import _os as os

from .. import container, foreground
from ..errors import ConchError
from . import create
from .args import BOOL, one_id, parse

HELP = """\
NAME:
   conch run - create and run a container

USAGE:
   conch run [command options] <container-id>

Where "<container-id>" is your name for the instance of the container that you
are starting. The name you provide for the container instance must be unique on
your host.

DESCRIPTION:
   The run command creates an instance of a container for a bundle and starts it.
   In the foreground conch forwards the signals it receives to the container,
   reaps it as a child subreaper, deletes it when it exits (unless --keep) and
   exits with its status (128+N if signal N killed it).

OPTIONS:
   --bundle value, -b value  path to the root of the bundle directory, defaults to the current directory
   --console-socket value    path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
   --detach, -d              detach from the container's process
   --keep                    do not delete the container after it exits
   --pid-file value          specify the file to write the process id to
   --no-subreaper            disable the use of the subreaper used to reap reparented processes
   --no-pivot                do not use pivot root to jail process inside rootfs.
   --no-new-keyring          do not create a new session keyring for the container.
   --preserve-fds value      Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total) (default: 0)
"""

# create's flags, and run's own
SPEC = dict(create.SPEC, **{
    "--detach": ("detach", BOOL), "-d": ("detach", BOOL),
    "--keep": ("keep", BOOL),
    "--no-subreaper": ("no_subreaper", BOOL),
})


def run(ctx, argv):
    o, pos = parse(argv, SPEC)
    cid = one_id(pos, "run")
    if o["detach"] and o["keep"]:
        raise ConchError("--detach and --keep cannot both be used")
    detach = o["detach"]
    if not detach:
        foreground.block_signals()
    try:
        lc = container.create(ctx.root, cid, o["bundle"] or ".", pid_file=o["pid_file"],
                              console_socket=o["console_socket"], no_pivot=o["no_pivot"],
           no_new_keyring=o["no_new_keyring"],
                              preserve_fds=o["preserve_fds"] or 0, keep_sock=True,
                              console_pair=not detach and not o["console_socket"],
                              rootless=ctx.rootless, systemd_cgroup=ctx.systemd_cgroup)
    except BaseException:
        if not detach:
            foreground.unblock_signals()
        raise
    try:
        container.start_launch(lc)
    except ConchError:
        if not detach:
            container.destroy(lc.state)
        raise
    if detach:
        return 0
    code = foreground.wait(lc.pid, lc.console_master)
    if lc.console_master is not None:
        os.close(lc.console_master)
    if not o["keep"]:
        container.destroy(lc.state, "stopped")
    return code
