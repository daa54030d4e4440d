"""Start a created container: release its init to exec the user's process.

Its own module (as youki's container_start.rs), so that `conch start`, on every
container's critical path, imports what starting needs and not the machinery of
`create` (config, cgroups, syscalls and its ctypes, seccomp): 2.5M instructions
less. conch.container re-exports `start` and `start_launch`.
"""

import _socket
from . import _os as os

from . import errors, sync
from .errors import ConchError
from .state import START_SOCK, State


def _unix_path(dirpath, name, keep):
    """A sun_path for dirpath/name: the path itself when it fits in 108 bytes,
    else through /proc/self/fd of an O_PATH fd of the directory (kept in `keep`)."""
    full = os.path.join(dirpath, name)
    if len(full) < 100:
        return full
    fd = os.open(dirpath, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    keep.append(fd)
    return f"/proc/self/fd/{fd}/{name}"


def start(root, cid):
    st = State.load(root, cid)
    status = st.status()
    if status != "created":
        if status == "stopped":
            raise ConchError("cannot start a container that has stopped")
        raise ConchError(f"cannot start an already {status} container")
    keep = []
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        try:
            s.connect(_unix_path(st.dir, START_SOCK, keep))
            s.send(sync.START)
            err = _wait_exec(s)
        except OSError as e:
            raise ConchError(f"cannot start container {cid}: {e.strerror}") from None
    finally:
        s.close()
        for fd in keep:
            os.close(fd)
    _started(st, err)


def _wait_exec(sock):
    """Block until the init execs (its end closes on exec) or reports an error."""
    try:
        data = sock.recv(sync.MAX)
    except ConnectionResetError:
        return "cannot start an already running container"
    if data.startswith(sync.ERROR):
        return sync.error_text(data[len(sync.ERROR) + 1:])
    return None


def _started(st, err):
    try:
        os.unlink(os.path.join(st.dir, START_SOCK))
    except FileNotFoundError:
        pass
    if err:
        raise ConchError(err)
    if (st.data.get("hooks") or {}).get("poststart"):
        from . import config, hooks  # only when there are poststart hooks
        hk = config.parse_hooks(st.data["hooks"])
        hooks.run_all(hk, "poststart", st.hook_state("running"), warn_only=True,
                      warn=errors.warn, cwd=st.data.get("bundle"))


def start_launch(lc):
    """Start a container created with keep_sock (the `run` path)."""
    sync.send(lc.sock, sync.START)
    err = _wait_exec(lc.sock)
    lc.sock.close()
    lc.sock = None
    _started(lc.state, err)
