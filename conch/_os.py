"""`os` without importing os: the posix module plus the few helpers conch uses.

`import os` costs 5.0M instructions here, a quarter of the interpreter's whole
start (20.9M, python3 -I -S, measured with callgrind): 3.0M of it is
_collections_abc, which os imports for os.environ's MutableMapping. Every
conch command paid it. The functions conch calls are posix's own (os merely
re-exports them); what os adds and conch needs is here: a str `environ`,
fsencode/fsdecode, makedirs and a `path` namespace with posixpath's
semantics for str paths. Modules of conch import this as `os`. Nothing here is
built before it is used: posix names and `environ` are looked up on first use.
"""

import posix as _posix
from posix import _exit, getcwd, lstat, mkdir, stat  # noqa: F401 - _exit is os._exit


def __getattr__(name):
    """Every other posix name, looked up on first use and then kept (PEP 562):
    `from posix import *` cost 0.2M instructions on every command."""
    if name == "environ":
        value = {k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
                 for k, v in _posix.environ.items()}
    else:
        try:
            value = getattr(_posix, name)
        except AttributeError:
            raise AttributeError(f"module 'conch._os' has no attribute '{name}'") from None
    globals()[name] = value
    return value


def fsencode(name):
    return name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")


def fsdecode(name):
    return name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name


# os.path: posixpath's functions conch uses, for str paths. `path` is a module
# object holding them, not a class (a class statement costs 0.15M instructions).

def _isabs(p):
    return p.startswith("/")


def _join(a, *parts):
    out = a
    for p in parts:
        if p.startswith("/"):
            out = p
        elif not out or out.endswith("/"):
            out += p
        else:
            out += "/" + p
    return out


def _normpath(p):
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


def _abspath(p):
    return _normpath(p if p.startswith("/") else _join(getcwd(), p))


def _dirname(p):
    i = p.rfind("/") + 1
    head = p[:i]
    if head and head != "/" * len(head):
        head = head.rstrip("/")
    return head


def _basename(p):
    return p[p.rfind("/") + 1:]


def _exists(p):
    try:
        stat(p)
    except (OSError, ValueError):
        return False
    return True


def _lexists(p):
    try:
        lstat(p)
    except (OSError, ValueError):
        return False
    return True


def _isdir(p):
    try:
        return stat(p).st_mode & 0o170000 == 0o040000  # S_ISDIR
    except (OSError, ValueError):
        return False


path = type(_posix)("conch._os.path")
path.sep = "/"
(path.isabs, path.join, path.normpath, path.abspath, path.dirname, path.basename,
 path.exists, path.lexists, path.isdir) = (_isabs, _join, _normpath, _abspath, _dirname,
                                           _basename, _exists, _lexists, _isdir)


def makedirs(name, mode=0o777, exist_ok=False):
    head = _dirname(name.rstrip("/"))
    if head and head != name and not _exists(head):
        try:
            makedirs(head, mode, exist_ok=True)
        except FileExistsError:
            pass
    try:
        mkdir(name, mode)
    except OSError:
        if not exist_ok or not _isdir(name):
            raise
