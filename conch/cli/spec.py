"""conch spec: write runc's default config.json (or its rootless variant)."""

from .. import _os as os

from ..errors import ConchError
from .args import BOOL, STR, exact_args, parse

HELP = """\
NAME:
   conch spec - create a new specification file

USAGE:
   conch spec [command options]

DESCRIPTION:
   The spec command creates the new specification file named "config.json" for
   the bundle, as runc's does: a busybox-sized default that runs "sh" with a
   terminal, in new pid, network, ipc, uts and mount namespaces, with a
   read-only root at "rootfs". It refuses to overwrite an existing file.

   To run it: mkdir -p rootfs && cp -a <a root filesystem>/. rootfs/ && conch spec
   && conch run mycontainer

OPTIONS:
   --bundle value, -b value  path to the root of the bundle directory
   --rootless                generate a configuration for a rootless container
"""

SPEC = {"--bundle": ("bundle", STR), "-b": ("bundle", STR), "--rootless": ("rootless", BOOL)}

CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def default_spec(rootless=False, uid=0, gid=0):
    spec = {
        "ociVersion": "1.2.0",
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(CAPS) for k in ("bounding", "effective", "permitted",
                                                     "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "conch",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                           {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }
    if rootless:
        to_rootless(spec, uid, gid)
    return spec


def to_rootless(spec, uid, gid):
    """runc's ToRootless: a user namespace mapping the caller to root, no network
    namespace, /sys bound from the host, no gid= on devpts, no cgroup resources."""
    linux = spec["linux"]
    linux["namespaces"] = [ns for ns in linux["namespaces"]
                           if ns["type"] not in ("network", "user")] + [{"type": "user"}]
    linux["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
    mounts = []
    for m in spec["mounts"]:
        if m["type"] == "sysfs" or m["destination"] == "/sys":
            m = {"destination": "/sys", "type": "none", "source": "/sys",
                 "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
        elif m["type"] == "devpts":
            m = dict(m, options=[o for o in m["options"] if not o.startswith("gid=")])
        mounts.append(m)
    spec["mounts"] = mounts
    linux.pop("resources", None)


def dumps_tabs(obj, level=0):
    """JSON indented with tabs, as runc writes config.json."""
    from .. import jsonlite
    pad = "\n" + "\t" * (level + 1)
    if isinstance(obj, dict) and obj:
        items = [pad + jsonlite.dumps(k) + ": " + dumps_tabs(v, level + 1) for k, v in obj.items()]
        return "{" + ",".join(items) + "\n" + "\t" * level + "}"
    if isinstance(obj, list) and obj:
        items = [pad + dumps_tabs(v, level + 1) for v in obj]
        return "[" + ",".join(items) + "\n" + "\t" * level + "]"
    return jsonlite.dumps(obj)


def run(ctx, argv):
    o, pos = parse(argv, SPEC)
    exact_args(pos, "spec", 0)
    rootless = o["rootless"]
    spec = default_spec(rootless, os.geteuid(), os.getegid())
    path = os.path.join(o["bundle"] or ".", "config.json")
    if os.path.lexists(path):
        raise ConchError("File config.json exists. Remove it first")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        raise ConchError("File config.json exists. Remove it first") from None
    except OSError as e:
        raise ConchError(f"{path}: {e.strerror}") from None
    try:
        os.write(fd, dumps_tabs(spec).encode())
    finally:
        os.close(fd)
    return 0
