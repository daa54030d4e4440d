"""Small helpers shared by the test files (pytest puts tests/ on sys.path)."""

import os
import re
import select
import time


def wait_for(pred, timeout=10.0, what="condition"):
    """Poll pred() until it returns something true (and return it); fail after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def state_record(root, cid):
    """conch's own record of a container (<root>/<id>/state: a marshalled dict)."""
    import marshal
    with open(f"{root}/{cid}/state", "rb") as f:
        return marshal.load(f)


class SignalState:
    """What container.signal_all reads of a container's state (kill --all tests)."""

    def __init__(self, mgr, status="running"):
        self.data = {"cgroup": mgr.to_state()}
        self.pid = 0
        self._status = status

    def alive(self):
        return False

    def status(self):
        return self._status


def read_until(fd, pattern, timeout=10):
    """Read fd (a pty master) until the bytes read match `pattern`; fail after timeout s."""
    buf = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, buf):
        left = deadline - time.monotonic()
        assert left > 0, f"no {pattern!r} in {buf!r}"
        if select.select([fd], [], [], left)[0]:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            buf += data
    assert re.search(pattern, buf), f"no {pattern!r} in {buf!r}"
    return buf
