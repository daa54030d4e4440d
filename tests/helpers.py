"""Small helpers shared by the test files (pytest puts tests/ on sys.path)."""

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
