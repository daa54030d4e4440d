"""conch start: release a created container's init to exec the user's process."""

from ..start import start
from .args import one_id, parse

HELP = """\
NAME:
   conch start - executes the user defined process in a created container

USAGE:
   conch start <container-id>

Where "<container-id>" is your name for the instance of the container that you
are starting.
"""


def run(ctx, argv):
    _, pos = parse(argv, {})
    start(ctx.root, one_id(pos, "start"))
    return 0
