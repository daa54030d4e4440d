"""A small command-line parser with runc's (urfave/cli's) conventions.

`--flag value`, `--flag=value`, `-flag value` (Go's single-dash long flags),
short aliases, flags after positional arguments, repeated booleans,
`--bool=false`, and `--` to end flags. argparse costs ~4 ms to import and
more to build; conch parses a handful of flags per call.
"""

from ..errors import ConchError


class UsageError(ConchError):
    pass


BOOL, STR, INT, LIST = "bool", "str", "int", "list"


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
        ent = spec.get(name)
        if ent is None and not name.startswith("--"):
            ent = spec.get("-" + name)  # Go flag style: -bundle == --bundle
        if ent is None:
            raise UsageError(f"flag provided but not defined: {name}")
        dest, kind = ent
        if kind == BOOL:
            if eq:
                if value.lower() in ("true", "1", "t"):
                    opts[dest] = True
                elif value.lower() in ("false", "0", "f"):
                    opts[dest] = False
                else:
                    raise UsageError(f"invalid boolean value {value!r} for flag {name}")
            else:
                opts[dest] = True
            continue
        if not eq:
            if i >= n:
                raise UsageError(f"flag needs an argument: -{name.lstrip('-')}")
            value = argv[i]
            i += 1
        if kind == INT:
            try:
                value = int(value, 0)
            except ValueError:
                raise UsageError(f"invalid value {value!r} for flag {name}: parse error") from None
        if kind == LIST:
            opts[dest].append(value)
        else:
            opts[dest] = value
    return opts, pos


def one_id(pos, cmd):
    if len(pos) != 1:
        raise UsageError(f'"{cmd}" requires exactly 1 argument(s)')
    return pos[0]
