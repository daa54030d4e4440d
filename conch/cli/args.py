"""A small command-line parser with runc's (urfave/cli v1's) conventions.

`--flag value`, `--flag=value`, `-flag value` (Go's single-dash long flags),
short aliases, flags after positional arguments, repeated booleans,
`--bool=false` (the values Go's strconv.ParseBool takes), and `--` to end
flags. As urfave/cli v1 reorders them: after the first positional argument a
known flag is still a flag, an unknown `-x` is a positional argument (so
`kill ID -9` reaches the signal parser). argparse costs ~4 ms to import and
more to build; conch parses a handful of flags per call.

Errors are runc's: a flag error says what Go's flag package says (the flag
named with one dash), a wrong count of arguments says `<argv0>: "cmd"
requires exactly N argument(s)`; the caller prints "Incorrect Usage" and the
command's help on stdout, as runc does (UsageError.usage).
"""

import sys

from ..errors import ConchError


class UsageError(ConchError):
    """A command line runc would refuse with "Incorrect Usage": `usage` is the text
    runc prints on stdout before the command's help."""

    def __init__(self, msg, usage=None):
        super().__init__(msg)
        self.usage = usage if usage is not None else f"Incorrect Usage: {msg}\n\n"


# OBOOL: a boolean whose value is None unless the flag is given (urfave's IsSet), for
# flags that override a config field only when given (exec --no-new-privs=false)
BOOL, OBOOL, STR, INT, LIST = "bool", "obool", "str", "int", "list"

# strconv.ParseBool, exactly (Go's flag package uses it for boolean flags)
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse(argv, spec, stop_at_first_positional=False):
    """spec: {"--name": (dest, kind), "-n": (dest, kind), ...}.
    Returns (opts, positionals); opts has a value for every dest."""
    opts = {}
    for dest, kind in spec.values():
        opts.setdefault(dest, False if kind == BOOL else [] if kind == LIST else None)
    pos = []
    i = 0
    n = len(argv)
    while i < n:
        a = argv[i]
        i += 1
        if a == "--":
            pos.extend(argv[i:])
            break
        if len(a) < 2 or a[0] != "-":
            pos.append(a)
            if stop_at_first_positional:
                pos.extend(argv[i:])
                break
            continue
        name, eq, value = a.partition("=")
        bare = name[2:] if name.startswith("--") else name[1:]
        # Go's flag package: one dash or two, the same flag (-bundle, --bundle, --b, -b)
        ent = (spec.get("--" + bare) or spec.get("-" + bare)) if bare[:1] not in ("", "-") else None
        if ent is None:
            if pos:
                pos.append(a)  # urfave/cli v1: only known flags are taken after a positional
                continue
            raise UsageError(f"flag provided but not defined: -{bare}")
        dest, kind = ent
        if kind in (BOOL, OBOOL):
            if eq:
                if value in _TRUE:
                    opts[dest] = True
                elif value in _FALSE:
                    opts[dest] = False
                else:
                    raise UsageError(f"invalid boolean value {_goquote(value)} for "
                                     f"-{bare}: parse error")
            else:
                opts[dest] = True
            continue
        if not eq:
            if i >= n:
                raise UsageError(f"flag needs an argument: -{bare}")
            value = argv[i]
            i += 1
        if kind == INT:
            try:
                value = int(value, 0)
            except ValueError:
                raise UsageError(f"invalid value {_goquote(value)} for flag "
                                 f"-{bare}: parse error") from None
        if kind == LIST:
            opts[dest].append(value)
        else:
            opts[dest] = value
    return opts, pos


def _goquote(s):
    """Go's %q of a plain string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _count_error(cmd, what, n):
    return UsageError(f'{sys.argv[0] if sys.argv and sys.argv[0] else "conch"}: "{cmd}" '
                      f"requires {what} {n} argument(s)", usage="Incorrect Usage.\n\n")


def exact_args(pos, cmd, n):
    if len(pos) != n:
        raise _count_error(cmd, "exactly", n)


def min_args(pos, cmd, n):
    if len(pos) < n:
        raise _count_error(cmd, "a minimum of", n)


def max_args(pos, cmd, n):
    if len(pos) > n:
        raise _count_error(cmd, "a maximum of", n)


def one_id(pos, cmd):
    exact_args(pos, cmd, 1)
    return pos[0]
