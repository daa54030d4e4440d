"""conch update: change a running container's cgroup limits."""

from .. import _os as os

from .. import jsonlite
from ..control import parse_ram, update
from ..errors import ConchError
from .args import STR, one_id, parse

HELP = """\
NAME:
   conch update - change a container's cgroup limits

USAGE:
   conch update [command options] <container-id>

The resources can be given as LinuxResources JSON (runtime-spec), from a file
or, with '-', from the standard input; unchanged values can be left out:

{
  "memory": {"limit": 0, "reservation": 0, "swap": 0, "checkBeforeUpdate": false},
  "cpu": {"shares": 0, "quota": 0, "burst": 0, "period": 0, "realtimeRuntime": 0,
          "realtimePeriod": 0, "cpus": "", "mems": "", "idle": 0},
  "pids": {"limit": 0},
  "blockIO": {"weight": 0},
  "unified": {"memory.high": "max"}
}

With --resources every other option is ignored. Sizes take binary units
(512m, 2g); -1 lifts a memory limit.

OPTIONS:
   --resources value, -r value  LinuxResources JSON: a file, or - for the standard input
   --blkio-weight value         block I/O weight, 10 to 1000
   --cpu-period value           CFS period, in microseconds
   --cpu-quota value            CFS quota: CPU time a period allows, in microseconds (-1: none)
   --cpu-burst value            CFS burst: unused quota a period may carry over, in microseconds
   --cpu-share value            CPU shares, the weight against other cgroups
   --cpu-rt-period value        realtime period, in microseconds
   --cpu-rt-runtime value       realtime runtime a period allows, in microseconds
   --cpuset-cpus value          the CPUs allowed (0-3,5)
   --cpuset-mems value          the memory nodes allowed (0,1)
   --cpu-idle value             1: the cgroup is SCHED_IDLE; 0: normal
   --memory value               memory limit in bytes (-1: none)
   --memory-reservation value   memory soft limit in bytes
   --memory-swap value          memory+swap limit in bytes (-1: no swap limit)
   --kernel-memory value        obsolete, ignored
   --kernel-memory-tcp value    obsolete, ignored
   --pids-limit value           the most processes the container may have (-1: no limit)
   --l3-cache-schema value      Intel RDT L3 cache schema (not supported)
   --mem-bw-schema value        Intel RDT memory bandwidth schema (not supported)
"""

# flag -> (dest, section, key, kind): kind "u" unsigned, "i" signed, "ram" size, "s" string
FLAGS = {
    "--blkio-weight": ("blockIO", "weight", "u"),
    "--cpu-period": ("cpu", "period", "u"),
    "--cpu-quota": ("cpu", "quota", "i"),
    "--cpu-burst": ("cpu", "burst", "u"),
    "--cpu-share": ("cpu", "shares", "u"),
    "--cpu-rt-period": ("cpu", "realtimePeriod", "u"),
    "--cpu-rt-runtime": ("cpu", "realtimeRuntime", "i"),
    "--cpuset-cpus": ("cpu", "cpus", "s"),
    "--cpuset-mems": ("cpu", "mems", "s"),
    "--cpu-idle": ("cpu", "idle", "i"),
    "--memory": ("memory", "limit", "ram"),
    "--memory-reservation": ("memory", "reservation", "ram"),
    "--memory-swap": ("memory", "swap", "ram"),
    "--kernel-memory": ("memory", "kernel", "ram"),
    "--kernel-memory-tcp": ("memory", "kernelTCP", "ram"),
    "--pids-limit": ("pids", "limit", "i"),
}

SPEC = {"--resources": ("resources", STR), "-r": ("resources", STR),
        "--l3-cache-schema": ("l3", STR), "--mem-bw-schema": ("membw", STR)}
SPEC.update({flag: (flag, STR) for flag in FLAGS})


def _value(flag, kind, text):
    if kind == "s":
        return text
    if kind == "ram":
        try:
            return parse_ram(text)
        except ConchError as e:
            raise ConchError(f"invalid value for {flag}: {e}") from None
    try:
        v = int(text, 10)
    except ValueError:
        raise ConchError(f'invalid value for {flag}: "{text}" is not an integer') from None
    if kind == "u" and v < 0:
        raise ConchError(f"invalid value for {flag}: {v} is negative")
    return v


def _read_resources(path):
    try:
        if path == "-":
            data = b""
            while True:
                chunk = os.read(0, 65536)
                if not chunk:
                    break
                data += chunk
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as e:
        raise ConchError(f"reading resources from {path}: {e.strerror}") from None
    try:
        return jsonlite.loads(data)
    except jsonlite.JSONError as e:
        raise ConchError(f"resources {'(stdin)' if path == '-' else path}: invalid JSON: {e}") from None


def run(ctx, argv):
    o, pos = parse(argv, SPEC)
    cid = one_id(pos, "update")
    if o["resources"] is not None:
        res = _read_resources(o["resources"])
    else:
        if o["l3"] is not None or o["membw"] is not None:
            raise ConchError("Intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported "
                             "by conch")
        res = {}
        for flag, (section, key, kind) in FLAGS.items():
            if o[flag] is not None:
                res.setdefault(section, {})[key] = _value(flag, kind, o[flag])
    update(ctx.root, cid, res)
    return 0
