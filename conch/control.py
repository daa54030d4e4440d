"""What conch does to a container's cgroup after it exists: pause, resume,
processes, update, stats and events. The commands in conch/cli (pause.py,
resume.py, ps.py, update.py, events.py) are thin shells over these.

None of this is on the start path of a container.
"""

from . import _os as os

from . import jsonlite
from .container import require_cgroup
from .errors import ConchError
from .state import State


def pause(root, cid):
    st = State.load(root, cid)
    if st.status() not in ("running", "created"):
        raise ConchError("container not running")
    require_cgroup(st, "pause").freeze()


def resume(root, cid):
    st = State.load(root, cid)
    if st.status() != "paused":
        raise ConchError("container not paused")
    require_cgroup(st, "resume").thaw()


def processes(root, cid):
    """The host pids of every process in the container's cgroup (and sub-cgroups)."""
    st = State.load(root, cid)
    return require_cgroup(st, "ps").procs()


def ps_table(pids, ps_args):
    """Run the host's ps (default -ef) and keep its header and the lines of `pids`."""
    import subprocess  # noqa: PLC0415 - ps only
    try:
        r = subprocess.run(["ps", *(ps_args or ["-ef"])], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, check=False)
    except OSError as e:
        raise ConchError(f"running ps: {e.strerror}") from None
    if r.returncode != 0:
        raise ConchError(f"ps {' '.join(ps_args or ['-ef'])} failed: {r.stderr.strip()}")
    lines = r.stdout.splitlines()
    if not lines:
        raise ConchError("ps printed nothing")
    header = lines[0].split()
    try:
        col = header.index("PID")
    except ValueError:
        raise ConchError("couldn't find PID field in ps output") from None
    want = set(pids)
    out = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in want:
            out.append(line)
    return "\n".join(out) + "\n"


def update(root, cid, new):
    """Apply LinuxResources `new` (a dict) to a container's cgroup: the fields it
    sets, on top of what the container has; on a write the kernel refuses,
    what was already written is restored. The result is kept in the state record."""
    from .cgroups import resources  # noqa: PLC0415
    st = State.load(root, cid)
    if st.status() == "stopped":
        raise ConchError("container not running")
    mgr = require_cgroup(st, "update")
    if not isinstance(new, dict):
        raise ConchError(f"resources: expected an object, got {type(new).__name__}")
    new = {k: v for k, v in new.items() if k != "devices"}  # as runc: not updatable
    old = st.data.get("resources") or {}
    merged = resources.merge(old, new)
    given = resources.parse(new, prefix="")
    if given.memory is not None and (given.memory.limit or given.memory.swap):
        # limit and swap go together: the order they are written in depends on both
        full = resources.parse({"memory": merged.get("memory", {})}, prefix="").memory
        given.memory.limit, given.memory.swap = full.limit, full.swap
        given.memory.check_before_update = full.check_before_update  # set at create, kept
    if given.empty():
        return
    mgr.apply(given, update=True)
    st.data["resources"] = merged
    st.save()


def stats(root, cid):
    """runc's `events --stats` object."""
    st = State.load(root, cid)
    if st.status() == "stopped":
        raise ConchError(f"container with id {cid} is not running")
    return {"type": "stats", "id": cid, "data": require_cgroup(st, "events").stats()}


def events(root, cid, interval, out):
    """Stream events as JSON lines to `out` (a callable taking a str): stats every
    `interval` seconds, and "oom" whenever the kernel's OOM killer acts in the
    container. Returns when the container's init exits."""
    import select  # noqa: PLC0415
    import time  # noqa: PLC0415
    st = State.load(root, cid)
    if st.status() == "stopped":
        raise ConchError(f"container with id {cid} is not running")
    mgr = require_cgroup(st, "events")
    try:
        pidfd = os.pidfd_open(st.pid)
    except OSError:
        raise ConchError(f"container with id {cid} is not running") from None
    watch = mgr.oom_watch()
    try:
        if not st.alive():
            raise ConchError(f"container with id {cid} is not running")
        p = select.poll()
        p.register(pidfd, select.POLLIN)
        if watch is not None:
            p.register(watch.fd, select.POLLIN | select.POLLPRI)
        oom = jsonlite.dumps({"type": "oom", "id": cid}) + "\n"
        due = time.monotonic() + interval
        while True:
            ready = {fd for fd, _ in p.poll(max(0.0, due - time.monotonic()) * 1000)}
            if watch is not None and (watch.fd in ready or pidfd in ready):
                for _ in range(watch.events()):
                    out(oom)
            if pidfd in ready:
                return
            if time.monotonic() >= due:
                out(jsonlite.dumps({"type": "stats", "id": cid, "data": mgr.stats()}) + "\n")
                due = time.monotonic() + interval
    finally:
        if watch is not None:
            watch.close()
        os.close(pidfd)


# --- units on the command line -------------------------------------------------------------

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                   "m": 60.0, "h": 3600.0}


def parse_duration(s):
    """A Go duration ("5s", "100ms", "1m30s", "1.5h") in seconds."""
    text = s.strip()
    if text in ("0",):
        return 0.0
    total = 0.0
    i = 0
    if not text:
        raise ConchError(f'invalid duration "{s}"')
    while i < len(text):
        j = i
        while j < len(text) and (text[j].isdigit() or text[j] == "."):
            j += 1
        if j == i:
            raise ConchError(f'invalid duration "{s}"')
        num = text[i:j]
        k = j
        while k < len(text) and not (text[k].isdigit() or text[k] == "."):
            k += 1
        unit = text[j:k]
        if unit not in _DURATION_UNITS:
            raise ConchError(f'invalid duration "{s}"' if unit else f'missing unit in duration "{s}"')
        try:
            total += float(num) * _DURATION_UNITS[unit]
        except ValueError:
            raise ConchError(f'invalid duration "{s}"') from None
        i = k
    return total


_RAM_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20,
              "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
              "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40, "p": 1 << 50, "pb": 1 << 50,
              "pib": 1 << 50}


def parse_ram(s):
    """A size in bytes with binary units ("512m", "1.5g", "1024"), as docker's
    units.RAMInBytes reads it; "-1" is -1 (no limit)."""
    text = s.strip()
    if text == "-1":
        return -1
    i = 0
    while i < len(text) and (text[i].isdigit() or text[i] == "."):
        i += 1
    num, unit = text[:i], text[i:].strip().lower()
    if not num or unit not in _RAM_UNITS:
        raise ConchError(f"invalid size: '{s}'")
    try:
        return int(float(num) * _RAM_UNITS[unit])
    except ValueError:
        raise ConchError(f"invalid size: '{s}'") from None
