"""Signal a container: its init, or every process of its cgroup (--all).

Its own module (as youki's container_kill.rs): `conch kill` imports the cgroup
drivers it may need, not the machinery of `create`. conch.container re-exports
`kill` and `signal_all`.
"""

import _signal
from . import _os as os

from . import cgroups, errors
from .errors import ConchError
from .state import State


def kill(root, cid, sig, all_=False):
    st = State.load(root, cid)
    status = st.status()
    if all_:
        # as runc 1.1: every process still in the cgroup, even once the init is gone
        # (containerd's `kill --all ID 9` before a delete), so no "not running" here
        signal_all(st, sig, status)
        return
    if status == "stopped":
        raise ConchError("container not running")
    _signal_init(st, sig)
    if sig == 9 and status == "paused":
        # as runc: a v1 freezer holds a killed process until it is thawed
        mgr = cgroups.Manager.from_state(st.data.get("cgroup"))
        if mgr is not None:
            _thaw(mgr)


def _signal_init(st, sig):
    try:
        fd = os.pidfd_open(st.pid)
    except ProcessLookupError:
        raise ConchError("container not running") from None
    try:
        # the pidfd pins the process: check it is still the container's init
        if not st.alive():
            raise ConchError("container not running")
        try:
            _signal.pidfd_send_signal(fd, sig)
        except OSError as e:
            if e.errno == 3:
                raise ConchError("container not running") from None
            # runc's words, with Go's errno text (a signal the kernel does not know:
            # "unable to signal init: invalid argument")
            raise ConchError(f"unable to signal init: {e.strerror.lower()}") from None
    finally:
        os.close(fd)


def signal_all(st, sig, status=None):
    """Signal every process of the container. SIGKILL goes through cgroup.kill when the
    cgroup has a cgroup2 directory (a v2 host, the unified one of a hybrid host) and the
    kernel the file, as runc 1.2 does: nothing can fork past it. Otherwise, as runc: the
    cgroup is frozen, each process in it signalled, the cgroup thawed. A container the
    user paused stays paused (runc would thaw it); SIGKILL always thaws."""
    mgr = cgroups.Manager.from_state(st.data.get("cgroup"))
    if sig == 9 and mgr is not None:
        try:
            killed = mgr.kill()
        except ConchError:
            killed = False  # e.g. not ours to write (rootless): signal each process
        if killed:
            _thaw(mgr)
            return
    froze = False
    if mgr is not None and mgr.freezer_files:
        if (status or st.status()) != "paused":
            try:
                mgr.freeze()
                froze = True
            except ConchError:
                pass  # as runc: signalled anyway
    try:
        pids = mgr.procs() if mgr else []
        if not pids and st.alive():
            pids = [st.pid]
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            except OSError as e:  # as runc: a warning, and on to the next one
                errors.warn(f"kill {pid}: {e.strerror.lower()}")
    finally:
        if sig == 9 and mgr is not None:
            _thaw(mgr)
        elif froze:
            try:
                mgr.thaw()
            except ConchError as e:
                errors.warn(str(e))


def _thaw(mgr):
    for path in mgr.freezer_files:
        try:
            with open(path, "wb") as f:
                f.write(b"THAWED" if path.endswith("freezer.state") else b"0")
        except OSError:
            pass
