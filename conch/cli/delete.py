"""conch delete: remove a container's resources (its state, cgroup; kill it with --force)."""

from ..delete import delete
from .args import BOOL, one_id, parse

HELP = """\
NAME:
   conch delete - delete any resources held by the container often used with detached container

USAGE:
   conch delete [command options] <container-id>

Where "<container-id>" is the name for the instance of the container.

EXAMPLE:
For example, if the container id is "ubuntu01" and conch list currently shows the
status of "ubuntu01" as "stopped" the following will delete resources held for
"ubuntu01" removing "ubuntu01" from the conch list of containers:

       # conch delete ubuntu01

OPTIONS:
   --force, -f  Forcibly deletes the container if it is still running (uses SIGKILL)
"""

SPEC = {"--force": ("force", BOOL), "-f": ("force", BOOL)}


def run(ctx, argv):
    o, pos = parse(argv, SPEC)
    delete(ctx.root, one_id(pos, "delete"), o["force"])
    return 0
