"""OCI hooks: fork, exec the hook with the state JSON on stdin, wait with a timeout.

No subprocess module (it imports selectors, signal and enum: ~5 ms). The
container init also runs createContainer and startContainer hooks through this
module after entering the container's root, so it must not import anything
lazily.
"""

import _signal
from . import _os as os
import select

from .errors import ConchError


def run(hook, state_json, kind, cwd=None):
    """Run one hook (in `cwd`, the bundle for the runtime's hooks, as runc runs them);
    raise ConchError if it fails, times out or cannot start."""
    r, w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the hook process
        try:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, ())
            for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):
                _signal.signal(sig, _signal.SIG_DFL)
            if cwd:
                os.chdir(cwd)
            os.dup2(r, 0)
            os.dup2(err_w, 2)
            os.closerange(3, 65536)
            env = dict(e.split("=", 1) for e in hook.env if "=" in e)
            os.execve(hook.path, hook.args, env)
        except OSError as e:
            os.write(2, f"{e.strerror}".encode())
        os._exit(127)
    os.close(r)
    os.close(err_w)
    try:
        try:
            os.write(w, state_json.encode())
        except BrokenPipeError:
            pass
        os.close(w)
        w = -1
        status = _wait(pid, hook.timeout)
        try:
            errtext = os.read(err_r, 4096).decode(errors="replace").strip()
        except OSError:
            errtext = ""
    finally:
        if w >= 0:
            os.close(w)
        os.close(err_r)
    if status is None:
        raise ConchError(f"error running {kind} hook {hook.path}: timed out after {hook.timeout}s")
    if status != 0:
        code = os.waitstatus_to_exitcode(status)
        what = f"exit status {code}" if code >= 0 else f"signal: {-code}"
        if code == 127 and errtext:
            what = f"exec {hook.path}: {errtext}"
        raise ConchError(f"error running {kind} hook {hook.path}: {what}"
                         + (f", stderr: {errtext}" if errtext and code != 127 else ""))


def _wait(pid, timeout):
    """waitpid with a timeout in seconds; None (and the hook killed) on timeout."""
    if not timeout:
        return os.waitpid(pid, 0)[1]
    pidfd = os.pidfd_open(pid)
    try:
        p = select.poll()
        p.register(pidfd, select.POLLIN)
        if not p.poll(timeout * 1000):
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return None
        return os.waitpid(pid, 0)[1]
    finally:
        os.close(pidfd)


def run_all(hooks, kind, state_json, warn_only=False, warn=None, cwd=None):
    for hook in hooks.get(kind, ()):
        try:
            run(hook, state_json, kind, cwd)
        except ConchError as e:
            if not warn_only:
                raise
            if warn:
                warn(str(e))
