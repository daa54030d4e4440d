"""conch create: create a container; its init waits for `conch start`."""

from ..container import create
from .args import BOOL, INT, STR, one_id, parse

HELP = """\
NAME:
   conch create - create a container

USAGE:
   conch create [command options] <container-id>

Where "<container-id>" is your name for the instance of the container that you
are starting. The name you provide for the container instance must be unique on
your host.

DESCRIPTION:
   The create command creates an instance of a container for a bundle. The bundle
   is a directory with a specification file named "config.json" and a root
   filesystem. The container's process waits, before its execve, for `conch start`.

OPTIONS:
   --bundle value, -b value  path to the root of the bundle directory, defaults to the current directory
   --console-socket value    path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
   --pid-file value          specify the file to write the process id to
   --no-pivot                do not use pivot root to jail process inside rootfs.
   --no-new-keyring          do not create a new session keyring for the container.
   --preserve-fds value      Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total) (default: 0)
"""

SPEC = {
    "--bundle": ("bundle", STR), "-b": ("bundle", STR),
    "--console-socket": ("console_socket", STR),
    "--pid-file": ("pid_file", STR),
    "--no-pivot": ("no_pivot", BOOL),
    "--no-new-keyring": ("no_new_keyring", BOOL),
    "--preserve-fds": ("preserve_fds", INT),
}


def run(ctx, argv):
    o, pos = parse(argv, SPEC)
    cid = one_id(pos, "create")
    create(ctx.root, cid, o["bundle"] or ".", pid_file=o["pid_file"],
           console_socket=o["console_socket"], no_pivot=o["no_pivot"],
           no_new_keyring=o["no_new_keyring"],
           preserve_fds=o["preserve_fds"] or 0, rootless=ctx.rootless,
           systemd_cgroup=ctx.systemd_cgroup)
    return 0
