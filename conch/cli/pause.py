"""conch pause: freeze every process of a container (the freezer cgroup)."""

from ..control import pause
from .args import one_id, parse

HELP = """\
NAME:
   conch pause - freeze every process of a container

USAGE:
   conch pause <container-id>

Where "<container-id>" is the name for the instance of the container to be
paused. The processes are frozen through the freezer cgroup (v1 freezer.state,
v2 cgroup.freeze); `conch state` then says "paused".
"""


def run(ctx, argv):
    _, pos = parse(argv, {})
    pause(ctx.root, one_id(pos, "pause"))
    return 0
