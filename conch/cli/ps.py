"""conch ps: the processes of a container, as the host's ps shows them, or their pids."""

from .. import _os as os

from .. import jsonlite
from ..control import processes, ps_table
from ..errors import ConchError
from .args import STR, min_args, parse

HELP = """\
NAME:
   conch ps - list the processes of a container

USAGE:
   conch ps [command options] <container-id> [ps options]

The table is the host's `ps -ef` (or `ps` with the options given after the
container id) cut down to the container's processes; --format json prints
their host pids as a JSON array.

OPTIONS:
   --format value, -f value  table (the host's ps output) or json (the pids) (default: "table")
"""

SPEC = {"--format": ("format", STR), "-f": ("format", STR)}


def run(ctx, argv):
    # flags come before the id; everything after it belongs to ps (as runc)
    o, pos = parse(argv, SPEC, stop_at_first_positional=True)
    min_args(pos, "ps", 1)
    cid, ps_args = pos[0], pos[1:]
    if ps_args[:1] == ["--"]:
        ps_args = ps_args[1:]
    pids = processes(ctx.root, cid)  # as runc: the container first, then the format
    fmt = o["format"] or "table"
    if fmt not in ("table", "json"):
        raise ConchError("invalid format option")
    if fmt == "json":
        os.write(1, (jsonlite.dumps(pids) + "\n").encode())
    else:
        os.write(1, ps_table(pids, ps_args).encode())
    return 0
