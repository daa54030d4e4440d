"""conch resume: thaw a paused container."""

from ..control import resume
from .args import one_id, parse

HELP = """\
NAME:
   conch resume - thaw a paused container

USAGE:
   conch resume <container-id>

Where "<container-id>" is the name for the instance of the container to be
resumed.
"""


def run(ctx, argv):
    _, pos = parse(argv, {})
    resume(ctx.root, one_id(pos, "resume"))
    return 0
