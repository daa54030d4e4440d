"""Delete a container: stop what is left of it, remove its cgroup, run the poststop
hooks and remove its state.

Its own module (as youki's container_delete.rs): `conch delete` imports the
cgroup drivers, not the machinery of `create`. conch.container re-exports
`delete` and `destroy`.
"""

from . import _os as os

from . import cgroups, errors
from .errors import ConchError
from .kill import _signal_init, _thaw, signal_all
from .state import State


def _wait_gone(pid, timeout_ms=10000):
    """Wait for a process that is not our child to exit."""
    import select
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        p.poll(timeout_ms)
    finally:
        os.close(fd)


def delete(root, cid, force=False):
    try:
        st = State.load(root, cid)
    except errors.NotExist:
        d = os.path.join(root, cid)
        if force and os.path.isdir(d):
            State(root, cid).remove()  # a create killed before it wrote anything
            return
        if force:
            return
        raise
    status = st.status()
    if status in ("running", "paused") and not force:
        raise ConchError(f"cannot delete container {cid} that is not stopped: {status}")
    destroy(st, status)


def destroy(st, status=None):
    status = status or st.status()
    mgr = cgroups.Manager.from_state(st.data.get("cgroup"))
    if status != "stopped":
        if st.data.get("own_pidns"):
            try:
                _signal_init(st, 9)
            except ConchError:
                pass
            if mgr is not None:
                _thaw(mgr)
        else:
            signal_all(st, 9, status)
        _wait_gone(st.pid)
    if mgr is not None:
        if mgr.procs() and not st.data.get("own_pidns"):
            signal_all(st, 9, "stopped")
        try:
            mgr.destroy()
        except ConchError as e:
            errors.warn(str(e))
    if (st.data.get("hooks") or {}).get("poststop"):
        from . import config, hooks  # only when there are poststop hooks
        hk = config.parse_hooks(st.data["hooks"])
        hooks.run_all(hk, "poststop", st.hook_state("stopped"), warn_only=True,
                      warn=errors.warn, cwd=st.data.get("bundle"))
    st.remove()
