"""conch events: a container's resource usage and OOM events, as JSON lines."""

from .. import _os as os

from .. import jsonlite
from ..control import events, parse_duration, stats
from ..errors import ConchError
from .args import BOOL, STR, UsageError, one_id, parse

HELP = """\
NAME:
   conch events - stream a container's resource usage and OOM kills (or print the usage once)

USAGE:
   conch events [command options] <container-id>

Where "<container-id>" is the name for the instance of the container.

DESCRIPTION:
   One JSON object a line: {"type":"stats","id":...,"data":{cpu, memory, pids,
blkio, hugetlb, ...}} every --interval, and {"type":"oom","id":...} when the
kernel's OOM killer acts in the container. Ends when the container stops.

OPTIONS:
   --interval value  time between two stats events, a Go duration (default: 5s)
   --stats           print the stats once and exit
"""

SPEC = {"--interval": ("interval", STR), "--stats": ("stats", BOOL)}


def _out(line):
    os.write(1, line.encode())


def run(ctx, argv):
    o, pos = parse(argv, SPEC)
    cid = one_id(pos, "events")
    interval = 5.0
    if o["interval"] is not None:
        try:
            interval = parse_duration(o["interval"])
        except ConchError:  # a Go flag.Duration: urfave refuses the command line
            raise UsageError(f'invalid value "{o["interval"]}" for flag -interval: '
                             "parse error") from None
    if interval <= 0:
        raise ConchError("duration interval must be greater than 0")
    if o["stats"]:
        _out(jsonlite.dumps(stats(ctx.root, cid)) + "\n")
        return 0
    try:
        events(ctx.root, cid, interval, _out)
    except BrokenPipeError:
        pass
    return 0
