"""conch state: the runtime-spec state of a container, as JSON."""

from .. import _os as os

from .. import jsonlite
from ..state import State
from .args import one_id, parse

HELP = """\
NAME:
   conch state - output the state of a container

USAGE:
   conch state <container-id>

Where "<container-id>" is your name for the instance of the container.
"""


def run(ctx, argv):
    _, pos = parse(argv, {})
    st = State.load(ctx.root, one_id(pos, "state"))
    os.write(1, jsonlite.dumps_indent(st.oci()).encode())
    return 0
