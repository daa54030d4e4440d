"""The one sync protocol between conch (the parent) and a container init.

A SOCK_SEQPACKET socketpair; each message is one packet, b"<kind>[ <payload>]",
read whole (its length is the kernel's, asked before the read), so there is no
length field to overflow and no message is cut short (CVE-2021-43784).
EOF means the other side died: the init then exits without running anything.

    init                                  parent
    ----                                  ------
    (cgroup v1: the init moves itself in through `tasks`, no message;
     cgroup2: it is born in its directory, clone3 CLONE_INTO_CGROUP)
                                          cgroup2 without clone3: writes the init's
                                          pid to cgroup.procs while the init goes
                                          on (it waits for an RCU grace period);
                                          systemd: starts the unit, makes and
                                          fills the directories
                                    <-    cgroup-done (only when the init waits:
                                          cgroupns, made after it; systemd, first
                                          thing)
    (user namespace only)
    usermap                         ->    writes /proc/PID/{uid,gid}_map
                                    <-    usermap-done
    pid <host pid>                  ->    (the intermediate reports the init it forked)
    (mounts done, before pivot_root; only when there are such hooks)
    hooks                           ->    runs prestart and createRuntime hooks
                                    <-    hooks-done | error <msg>
    (linux.seccomp with SCMP_ACT_NOTIFY, once the filter is loaded)
    seccomp + the listener fd       ->    sends the fd and the state to listenerPath
                                    <-    seccomp-done | error <msg>
    ready                           ->    writes the state record and the pid file
                                    <-    created: wait for `conch start` on start.sock
                                    <-    start: go now (`conch run`)
    error <msg>                     ->    (any time) the init failed and exits

`conch start` connects to <state dir>/start.sock and sends b"start"; the init
runs startContainer hooks and execs the user's process.
"""

import _socket
from posix import strerror as _strerror

from .errors import ConchError

CGROUP_DONE = b"cgroup-done"
USERMAP = b"usermap"
USERMAP_DONE = b"usermap-done"
PID = b"pid"
HOOKS = b"hooks"
HOOKS_DONE = b"hooks-done"
SECCOMP = b"seccomp"
SECCOMP_DONE = b"seccomp-done"
READY = b"ready"
CREATED = b"created"
START = b"start"
ERROR = b"error"

MAX = 65536  # the usual bound of a message; `recv` takes any packet whole
_PEEK = bytearray(1)
_FD_SPACE = _socket.CMSG_SPACE(4)


def pair():
    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)


def send(sock, kind, payload=b""):
    if isinstance(payload, str):
        payload = payload.encode()
    data = kind + b" " + payload if payload else kind
    try:
        sock.send(data)
    except OSError as e:
        if e.errno != 90:  # EMSGSIZE: over the socket's send buffer (~208 KiB)
            raise
        raise ConchError(f"{kind.decode()}: {len(data)} bytes is too large to pass to the "
                         "container's init (large annotations?)") from None


def send_fd(sock, kind, fd):
    """A message that carries one file descriptor (SCM_RIGHTS)."""
    sock.sendmsg([kind], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, "little"))])


def error_text(payload):
    """The text of an `error` payload. The exec trampoline (conch/trampoline.py) cannot
    format an errno: it sends "<prefix>\\0<errno in 3 digits>", made whole here."""
    text, nul, num = bytes(payload).partition(b"\0")
    msg = text.decode(errors="replace")
    if nul and num[:3].isdigit():
        msg += _strerror(int(num[:3]))
    return msg


def recv(sock):
    """(kind, payload); (None, b"") when the other side is gone.

    A packet is read whole, whatever its size: its length is asked first
    (MSG_PEEK | MSG_TRUNC), so a long state (large annotations) is never cut
    short and misread. A message that carries a file descriptor (send_fd) has
    the number of the fd received here as its payload."""
    try:
        size = sock.recv_into(_PEEK, 1, _socket.MSG_PEEK | _socket.MSG_TRUNC)
        if not size:
            return None, b""
        data, anc, _, _ = sock.recvmsg(size, _FD_SPACE)
    except OSError:
        return None, b""
    if not data:
        return None, b""
    kind, _, payload = data.partition(b" ")
    for level, typ, cdata in anc:
        if level == _socket.SOL_SOCKET and typ == _socket.SCM_RIGHTS and len(cdata) >= 4:
            payload = str(int.from_bytes(cdata[:4], "little")).encode()
    return kind, payload
