"""AppArmor and SELinux: is the LSM the config asks for there? (in conch, before the fork)

Imported only for a config or an exec that sets process.apparmorProfile,
process.selinuxLabel or linux.mountLabel. The host is asked once per start:

- AppArmor is enabled when /sys/module/apparmor/parameters/enabled says "Y"
  and securityfs shows /sys/kernel/security/apparmor (as runc checks it);
- SELinux is enabled when selinuxfs is mounted at /sys/fs/selinux.

A label the host cannot apply is an error that names the field (runc 1.1
errors for an SELinux label and fails later for an AppArmor profile; conch says
why, before anything exists). The labels themselves are written by the
process being started, just before its execve (init.set_exec_labels, through
a procfs fd); linux.mountLabel goes into the `context=` option of the tmpfs
and devpts mounts, as runc formats it.
"""

from . import _os as os

from . import syscalls as sc
from .errors import ConfigError

SELINUX_MAGIC = 0xF97CFF8C


def apparmor_enabled():
    try:
        with open("/sys/module/apparmor/parameters/enabled", "rb") as f:
            enabled = f.read(1) == b"Y"
    except OSError:
        return False
    return enabled and os.path.isdir("/sys/kernel/security/apparmor")


def selinux_enabled():
    try:
        fd = os.open("/sys/fs/selinux", sc.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return sc.fstatfs_type(fd) == SELINUX_MAGIC and os.path.exists("/sys/fs/selinux/enforce")
    finally:
        os.close(fd)


def check(proc, cfg=None, field="process"):
    """Raise ConfigError for a label the host cannot apply; apply linux.mountLabel
    to the mounts' options when SELinux is there."""
    if proc.apparmor and not apparmor_enabled():
        raise ConfigError(f"{field}.apparmorProfile",
                          f"AppArmor profile {proc.apparmor!r} requested, but AppArmor is not "
                          "enabled on this host (/sys/module/apparmor/parameters/enabled)")
    mount_label = cfg.mount_label if cfg is not None else ""
    if not (proc.selinux_label or mount_label):
        return
    if not selinux_enabled():
        which = f"{field}.selinuxLabel" if proc.selinux_label else "linux.mountLabel"
        label = proc.selinux_label or mount_label
        raise ConfigError(which, f"SELinux label {label!r} requested, but SELinux is not "
                          "enabled on this host (no selinuxfs at /sys/fs/selinux)")
    if mount_label:
        for m in cfg.mounts:
            if not m.bind and m.type in ("tmpfs", "devpts") and "context=" not in m.data:
                ctx = f'context="{mount_label}"'
                m.data = f"{m.data},{ctx}" if m.data else ctx
