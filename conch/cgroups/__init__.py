"""cgroups: one interface (common.Manager), three drivers.

- v1.py: cgroupfs v1, one mount per controller under /sys/fs/cgroup (this VM);
  on a hybrid host also the container's directory in the cgroup2 mount at
  /sys/fs/cgroup/unified, as runc makes it.
- v2.py: cgroupfs v2, the unified hierarchy at /sys/fs/cgroup; devices via an
  eBPF program (bpf.py).
- systemd.py: --systemd-cgroup, a transient scope made over D-Bus, with the
  files then written through v1.py or v2.py.

resources.py reads linux.resources into checked objects and holds the v1 <->
v2 conversions. ``linux.cgroupsPath`` is read as runc reads it for cgroupfs:
an absolute path is taken from the hierarchy's root, a relative one (and the
default, the container id) from the runtime's own cgroup in that hierarchy.
The hierarchies are read from /proc/self/cgroup, one small file, rather than
from mountinfo. Only common.py and the cgroupfs driver of the host are
imported on the start path.
"""

from .common import (CGROUP_ROOT, Manager, check_path, effective_device_rules, is_v2_host,
                     own_cgroups, read, write)
from .v1 import V1Manager

# names older callers use
_write = write
_read = read
_own_cgroups = own_cgroups
_check_path = check_path

__all__ = ["CGROUP_ROOT", "Manager", "V1Manager", "effective_device_rules", "is_v2_host",
           "manager_for", "needs_resources"]


def manager_for(cgpath, cid, systemd=False):
    """The Manager for a container: its driver and directories (nothing is made yet)."""
    check_path(cgpath)
    if systemd:
        from .systemd import SystemdManager  # noqa: PLC0415
        return SystemdManager.for_path(cgpath, cid)
    if ":" in cgpath and not cgpath.startswith("/"):
        from ..errors import ConchError  # noqa: PLC0415
        raise ConchError(f"linux.cgroupsPath: {cgpath!r} is a systemd path "
                         "(slice:prefix:name); it needs --systemd-cgroup")
    if is_v2_host():
        from .v2 import V2Manager  # noqa: PLC0415
        return V2Manager.for_path(cgpath, cid)
    return V1Manager.for_path(cgpath, cid)


def needs_resources(resources):
    """True when linux.resources sets more than devices (which config.py reads):
    only then is resources.py imported and the files written."""
    return any(v not in (None, {}, []) for k, v in resources.items() if k != "devices")


def __getattr__(name):
    if name == "V2Manager":
        from .v2 import V2Manager  # noqa: PLC0415
        return V2Manager
    raise AttributeError(name)
