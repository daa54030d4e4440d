"""The one sync protocol between conch (the parent) and a container init.

A SOCK_SEQPACKET socketpair; each message is one packet, b"<kind>[ <payload>]",
at most 64 KiB, so there is no length field to overflow (CVE-2021-43784).
EOF means the other side died: the init then exits without running anything.

    init                                  parent
    ----                                  ------
    (cgroup v1: the init moves itself in through `tasks`, no message)
                                          cgroup v2: writes the init's pid to
                                          cgroup.procs while the init goes on
                                          (it waits for an RCU grace period)
                                    <-    cgroup-done (v2, and only with a new
                                          cgroup namespace, made after it)
    (user namespace only)
    usermap                         ->    writes /proc/PID/{uid,gid}_map
                                    <-    usermap-done
    pid <host pid>                  ->    (the intermediate reports the init it forked)
    (mounts done, before pivot_root; only when there are such hooks)
    hooks                           ->    runs prestart and createRuntime hooks
                                    <-    hooks-done | error <msg>
    ready                           ->    writes state.json and the pid file
                                    <-    created: wait for `conch start` on start.sock
                                    <-    start: go now (`conch run`)
    error <msg>                     ->    (any time) the init failed and exits

`conch start` connects to <state dir>/start.sock and sends b"start"; the init
runs startContainer hooks and execs the user's process.
"""

import _socket

CGROUP_DONE = b"cgroup-done"
USERMAP = b"usermap"
USERMAP_DONE = b"usermap-done"
PID = b"pid"
HOOKS = b"hooks"
HOOKS_DONE = b"hooks-done"
READY = b"ready"
CREATED = b"created"
START = b"start"
ERROR = b"error"

MAX = 65536


def pair():
    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)


def send(sock, kind, payload=b""):
    if isinstance(payload, str):
        payload = payload.encode()
    sock.send(kind + b" " + payload if payload else kind)


def recv(sock):
    """(kind, payload); (None, b"") when the other side is gone."""
    try:
        data = sock.recv(MAX)
    except OSError:
        return None, b""
    if not data:
        return None, b""
    kind, _, payload = data.partition(b" ")
    return kind, payload
