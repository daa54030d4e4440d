"""A foreground container or exec process: signals, terminal, exit status.

conch stays the process's parent (or, with a user namespace, its child
subreaper), forwards every signal it gets to it, reaps it and exits with its
status: the exit code, or 128+N when signal N killed it. With a terminal and
no console socket the container's pty master comes back to conch, which
copies between it and its own stdio, the caller's terminal in raw mode, and
keeps the window size in sync on SIGWINCH.

Signals are blocked before the fork (the child unblocks them before execve)
and read from a signalfd, so none is lost between fork and wait.
"""

import _signal
from . import _os as os
import select

from . import syscalls as sc

# Signals that stop or kill conch by their nature are not forwarded.
_NOT_FORWARDED = {_signal.SIGKILL, _signal.SIGSTOP, _signal.SIGSEGV, _signal.SIGBUS,
                  _signal.SIGFPE, _signal.SIGILL, _signal.SIGTRAP, _signal.SIGSYS}
SIGNALS = [s for s in range(1, 32) if s not in _NOT_FORWARDED]


def block_signals():
    _signal.pthread_sigmask(_signal.SIG_BLOCK, SIGNALS)


def unblock_signals():
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, SIGNALS)


def exit_code(status):
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def wait(pid, master=None):
    """Forward signals to pid, copy terminal I/O, return its exit code."""
    sfd = sc.signalfd(SIGNALS)
    saved = None
    status = None
    try:
        if master is not None:
            saved = _raw_stdin()
            _copy_winsize(master)
        poller = select.poll()
        poller.register(sfd, select.POLLIN)
        stdin_open = master is not None
        if master is not None:
            poller.register(master, select.POLLIN)
            poller.register(0, select.POLLIN)
        while status is None:
            for fd, ev in poller.poll():
                if fd == sfd:
                    status = _on_signals(sfd, pid, master)
                elif fd == master:
                    if not _pump(master, 1):
                        poller.unregister(master)
                elif fd == 0 and stdin_open:
                    if not _pump(0, master):
                        stdin_open = False
                        poller.unregister(0)
        if master is not None:
            # what the process wrote just before it exited
            while select.select([master], [], [], 0)[0] and _pump(master, 1):
                pass
    finally:
        os.close(sfd)
        if saved is not None:
            import termios
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
    return exit_code(status)


def _on_signals(sfd, pid, master):
    data = os.read(sfd, 128 * 16)
    status = None
    for off in range(0, len(data), 128):
        sig = int.from_bytes(data[off:off + 4], "little")
        if sig == _signal.SIGCHLD:
            while True:
                try:
                    p, st = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if p == 0:
                    break
                if p == pid:
                    status = st
        elif sig == _signal.SIGWINCH and master is not None:
            _copy_winsize(master)
        else:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    return status


def _pump(src, dst):
    try:
        data = os.read(src, 65536)
    except OSError:  # EIO: the pty slave has no more openers
        return False
    if not data:
        return False
    while data:
        try:
            n = os.write(dst, data)
        except OSError:
            return False
        data = data[n:]
    return True


def _raw_stdin():
    if not os.isatty(0):
        return None
    import termios
    import tty
    saved = termios.tcgetattr(0)
    tty.setraw(0)
    return saved


def _copy_winsize(master):
    for fd in (0, 1, 2):
        try:
            ws = sc.ioctl(fd, sc.TIOCGWINSZ, b"\0" * 8)
        except OSError:
            continue
        try:
            sc.ioctl(master, sc.TIOCSWINSZ, ws)
        except OSError:
            pass
        return
