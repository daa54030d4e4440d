"""conch kill: send a signal to a container's init (or, with --all, to all its processes)."""

import _signal

from ..container import kill
from ..errors import ConchError
from .args import BOOL, parse

HELP = """\
NAME:
   conch kill - kill sends the specified signal (default: SIGTERM) to the container's init process

USAGE:
   conch kill [command options] <container-id> [signal]

Where "<container-id>" is the name for the instance of the container and
"[signal]" is the signal to be sent to the init process: a number, or a name
with or without SIG (KILL, SIGKILL).

OPTIONS:
   --all, -a  send the specified signal to all processes inside the container
"""

SPEC = {"--all": ("all", BOOL), "-a": ("all", BOOL)}


def parse_signal(s):
    if s.isdigit():
        n = int(s)
        if n < _signal.NSIG:  # 0, as for runc: only checks the container is there
            return n
        raise ConchError(f'unknown signal "{s}"')
    name = s.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    n = getattr(_signal, name, None)
    if not isinstance(n, int) or name.startswith("SIG_"):
        raise ConchError(f'unknown signal "{s}"')
    return n


def run(ctx, argv):
    o, pos = parse(argv, SPEC)
    if not pos or len(pos) > 2:
        raise ConchError('"kill" requires a minimum of 1 and a maximum of 2 arguments')
    sig = parse_signal(pos[1]) if len(pos) == 2 else 15
    kill(ctx.root, pos[0], sig, o["all"])
    return 0
