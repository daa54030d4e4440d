"""`os` without importing os: the posix module plus the few helpers conch uses.

`import os` costs 5.0M instructions here, a quarter of the interpreter's whole
start (20.9M, python3 -I -S, measured with callgrind): 3.0M of it is
_collections_abc, which os imports for os.environ's MutableMapping. Every
conch command paid it. The functions conch calls are posix's own (os merely
re-exports them); what os adds and conch needs is here: a str `environ`,
fsencode/fsdecode, makedirs and a `path` namespace with posixpath's
semantics for str paths. Modules of conch import this as `os`.
"""

from posix import *  # noqa: F401,F403 - the functions os re-exports
from posix import _exit  # noqa: F401 - not exported by *
from posix import environ as _benv
from posix import getcwd, lstat, mkdir, stat
from _stat import S_ISDIR

environ = {k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
           for k, v in _benv.items()}


def fsencode(name):
    return name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")


def fsdecode(name):
    return name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name


class path:
    """posixpath's functions conch uses, for str paths."""

    sep = "/"

    @staticmethod
    def isabs(p):
        return p.startswith("/")

    @staticmethod
    def join(a, *parts):
        out = a
        for p in parts:
            if p.startswith("/"):
                out = p
            elif not out or out.endswith("/"):
                out += p
            else:
                out += "/" + p
        return out

    @staticmethod
    def normpath(p):
        if not p:
            return "."
        initial = 2 if p.startswith("//") and not p.startswith("///") else 1 if p.startswith("/") else 0
        comps = []
        for c in p.split("/"):
            if c in ("", "."):
                continue
            if c != ".." or (not initial and not comps) or (comps and comps[-1] == ".."):
                comps.append(c)
            elif comps:
                comps.pop()
        out = "/".join(comps)
        if initial:
            out = "/" * initial + out
        return out or "."

    @staticmethod
    def abspath(p):
        return path.normpath(p if p.startswith("/") else path.join(getcwd(), p))

    @staticmethod
    def dirname(p):
        i = p.rfind("/") + 1
        head = p[:i]
        if head and head != "/" * len(head):
            head = head.rstrip("/")
        return head

    @staticmethod
    def basename(p):
        return p[p.rfind("/") + 1:]

    @staticmethod
    def exists(p):
        try:
            stat(p)
        except (OSError, ValueError):
            return False
        return True

    @staticmethod
    def lexists(p):
        try:
            lstat(p)
        except (OSError, ValueError):
            return False
        return True

    @staticmethod
    def isdir(p):
        try:
            return S_ISDIR(stat(p).st_mode)
        except (OSError, ValueError):
            return False


def makedirs(name, mode=0o777, exist_ok=False):
    head = path.dirname(name.rstrip("/"))
    if head and head != name and not path.exists(head):
        try:
            makedirs(head, mode, exist_ok=True)
        except FileExistsError:
            pass
    try:
        mkdir(name, mode)
    except OSError:
        if not exist_ok or not path.isdir(name):
            raise
