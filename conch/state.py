"""The state directory: <root>/<id>/state, written atomically.

mkdir of <root>/<id> is the claim on an id: of several concurrent creates
exactly one gets it. The state record is written to a temporary file and renamed.
A container is `created` while its init waits on <root>/<id>/start.sock,
`stopped` once its init is gone, a zombie, or a different process with the
same pid (its start time in /proc/PID/stat differs from the recorded one).
"""

from . import _os as os
import time

from marshal import dumps as _marshal, loads as _unmarshal

from . import errors
from .errors import ConchError

START_SOCK = "start.sock"
# the record is a marshal of a dict of plain values (str, int, list, dict), not JSON:
# marshal is built in, where JSON would cost every command a dlopen of _json;
# users read it with `conch state`, as runc's state.json is read with `runc state`
STATE_FILE = "state"

_ID_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def check_id(cid):
    if not cid:
        raise ConchError("container id cannot be empty")
    if cid in (".", "..") or not _ID_OK.issuperset(cid) or len(cid) > 1024:
        raise ConchError("invalid container ID format")  # runc's words


def default_root():
    """/run/conch for root; $XDG_RUNTIME_DIR/conch for anyone else (as runc). Without
    XDG_RUNTIME_DIR a user gets /run/conch only if it may write there; else an error
    (no fallback under /tmp, where another user could make the directory first)."""
    if os.geteuid() == 0:
        return "/run/conch"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "conch")
    if os.access("/run/conch", os.W_OK | os.X_OK) or (
            not os.path.lexists("/run/conch") and os.access("/run", os.W_OK | os.X_OK)):
        return "/run/conch"
    raise ConchError(f"XDG_RUNTIME_DIR is not set and /run/conch is not writable by uid "
                     f"{os.geteuid()}: set XDG_RUNTIME_DIR (usually /run/user/{os.geteuid()}) "
                     "or pass --root")


def proc_stat(pid):
    """(state letter, start time in clock ticks) of a pid, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    return rest[0].decode(), int(rest[19])


def utc_now():
    """RFC 3339 with nanoseconds, as Go's time.RFC3339Nano prints UTC."""
    ns = time.time_ns()
    s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return f"{s}.{frac}Z" if frac else f"{s}Z"


class State:
    """What conch records of a container. `data` is the dict in state.json."""

    __slots__ = ("root", "id", "dir", "data")

    def __init__(self, root, cid, data=None):
        self.root = root
        self.id = cid
        self.dir = os.path.join(root, cid)
        self.data = data if data is not None else {}

    @classmethod
    def load(cls, root, cid):
        check_id(cid)
        st = cls(root, cid)
        try:
            with open(os.path.join(st.dir, STATE_FILE), "rb") as f:
                st.data = _unmarshal(f.read())
        except FileNotFoundError:
            raise errors.NotExist() from None
        except OSError as e:
            raise ConchError(f"reading state of {cid}: {e}") from None
        except (ValueError, EOFError, TypeError):
            raise ConchError(f"reading state of {cid}: {STATE_FILE} is damaged") from None
        if type(st.data) is not dict:
            raise ConchError(f"reading state of {cid}: {STATE_FILE} is damaged")
        return st

    @classmethod
    def claim(cls, root, cid):
        """Create <root>/<id>; fail if another create has it."""
        check_id(cid)
        st = cls(root, cid)
        try:
            os.mkdir(st.dir, 0o711)
        except FileNotFoundError:
            # a user's root is private (as runc's $XDG_RUNTIME_DIR/runc); root's is 0711
            os.makedirs(root, 0o711 if os.geteuid() == 0 else 0o700, exist_ok=True)
            return cls.claim(root, cid)
        except FileExistsError:
            raise ConchError("container with given ID already exists") from None  # runc's words
        return st

    def save(self):
        tmp = os.path.join(self.dir, f".{STATE_FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, _marshal(self.data))
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(self.dir, STATE_FILE))

    def remove(self):
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(os.path.join(self.dir, name))
            except FileNotFoundError:
                pass
        try:
            os.rmdir(self.dir)
        except FileNotFoundError:
            pass

    # --- status -------------------------------------------------------------

    @property
    def pid(self):
        return self.data.get("pid", 0)

    def alive(self):
        pid = self.pid
        if pid <= 0:
            return False
        st = proc_stat(pid)
        return st is not None and st[0] not in "ZX" and st[1] == self.data.get("start_time")

    def status(self):
        if not self.alive():
            return "stopped"
        if self._frozen():  # as runc: a created container can be paused too
            return "paused"
        if os.path.exists(os.path.join(self.dir, START_SOCK)):
            return "created"
        return "running"

    def _frozen(self):
        for path in self.data.get("freezer", ()):
            try:
                with open(path, "rb") as f:
                    v = f.read().strip()
            except OSError:
                continue
            if v in (b"FROZEN", b"1"):
                return True
        return False

    def oci(self, status=None):
        """The runtime-spec state, with runc's extra rootfs/created/owner fields."""
        d = self.data
        status = status or self.status()
        out = {
            "ociVersion": d.get("ociVersion", ""),
            "id": self.id,
            "pid": self.pid if status != "stopped" else 0,
            "status": status,
            "bundle": d.get("bundle", ""),
            "rootfs": d.get("rootfs", ""),
            "created": d.get("created", ""),
        }
        if d.get("annotations"):
            out["annotations"] = dict(sorted(d["annotations"].items()))  # a Go map: sorted
        out["owner"] = d.get("owner", "")
        return out

    def hook_state(self, status):
        """The state JSON hooks get on stdin (runtime-spec's fields only)."""
        d = {"ociVersion": self.data.get("ociVersion", ""), "id": self.id,
             "status": status, "bundle": self.data.get("bundle", "")}
        if status != "stopped" or self.pid:
            d["pid"] = self.pid
        if self.data.get("annotations"):
            d["annotations"] = dict(sorted(self.data["annotations"].items()))
        from . import jsonlite
        return jsonlite.dumps(d)


def list_ids(root):
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if not n.startswith("."))
