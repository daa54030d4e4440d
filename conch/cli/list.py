"""conch list: the containers under --root, as a table or JSON."""

from .. import _os as os

from .. import jsonlite
from ..errors import ConchError, NotExist
from ..state import State, list_ids
from .args import BOOL, STR, exact_args, parse

HELP = """\
NAME:
   conch list - lists containers started by conch with the given root

USAGE:
   conch list [command options]

OPTIONS:
   --format value, -f value  select one of: table or json (default: "table")
   --quiet, -q               display only container IDs
"""

SPEC = {"--format": ("format", STR), "-f": ("format", STR),
        "--quiet": ("quiet", BOOL), "-q": ("quiet", BOOL)}


def _owner(root, cid):
    try:
        uid = os.stat(os.path.join(root, cid)).st_uid
    except OSError:
        return ""
    if uid == 0:
        return "root"
    import pwd  # not the start path; list runs on the host
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def run(ctx, argv):
    o, pos = parse(argv, SPEC)
    exact_args(pos, "list", 0)
    fmt = o["format"] or "table"
    if fmt not in ("table", "json"):
        raise ConchError("invalid format option")
    states = []
    for cid in list_ids(ctx.root):
        try:
            st = State.load(ctx.root, cid)
        except (NotExist, ConchError):
            continue
        d = st.oci()
        d["owner"] = _owner(ctx.root, cid)
        states.append(d)
    if o["quiet"]:
        out = "".join(d["id"] + "\n" for d in states)
    elif fmt == "json":
        out = (jsonlite.dumps(states) if states else "null") + "\n"  # runc: a nil slice
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(d["id"], str(d["pid"]), d["status"], d["bundle"], d["created"], d["owner"])
                 for d in states]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        out = "".join("".join(c.ljust(max(w + 3, 12)) for c, w in zip(r[:5], widths)) + r[5] + "\n"
                      for r in rows)
    os.write(1, out.encode())
    return 0
