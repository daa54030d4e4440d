"""conch kill: send a signal to a container's init (or, with --all, to all its processes)."""

import _signal

from ..kill import kill
from ..errors import ConchError
from .args import BOOL, max_args, min_args, parse

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


_NOT_GO = ("SIGIOT", "SIGPOLL", "SIGCLD", "SIGRTMIN", "SIGRTMAX")


def parse_signal(s):
    """As runc: a number (Go's strconv.Atoi: a sign, decimal digits) is taken as it is
    (0 only checks that the container is there; one the kernel does not know fails
    as kill(2) fails, "unable to signal init: invalid argument"), else a name."""
    digits = s[1:] if s[:1] in ("+", "-") else s
    if digits.isdigit() and digits.isascii() and -(1 << 63) <= int(s) < 1 << 63:
        n = int(s)
        return n if -0x80000000 <= n <= 0x7FFFFFFF else -1  # -1: EINVAL from the kernel
    name = s.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    n = getattr(_signal, name, None)
    # Go's table has the 31 classic names only: no aliases, no real-time names
    if not isinstance(n, int) or name.startswith("SIG_") or name in _NOT_GO:
        raise ConchError(f'unknown signal "{s}"')
    return n


def run(ctx, argv):
    o, pos = parse(argv, SPEC)
    min_args(pos, "kill", 1)
    max_args(pos, "kill", 2)
    sig = parse_signal(pos[1]) if len(pos) == 2 else 15
    kill(ctx.root, pos[0], sig, o["all"])
    return 0
