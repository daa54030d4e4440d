"""linux.resources read into plain checked objects, and the v1 <-> v2 conversions.

`parse(d)` checks every field's type and range and raises ConfigError naming
it (``linux.resources.memory.limit: expected integer, got "x"``) before any
cgroup file is touched. Unset fields are None. As in runc 1.1, a 0 means
"not set" for the fields where the kernel has no use for 0 (memory limits,
cpu shares, quota and period, realtime values, block I/O weights, the pids
limit, the net_cls class id); -1 means "no limit" where a limit can be
lifted.

Not on the start path of a container without resources: container.create
imports this module only when linux.resources has more than devices.
"""

from ..config import ConfigError, _bool, _expect, _list, _obj, _str
from ..errors import describe

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1


def _num(d, key, field, lo, hi):
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        _expect(field, "integer", v)
    if v < lo or v > hi:
        raise ConfigError(field, f"{v} is out of range")
    return v


def _limit(d, key, field, lo=I64_MIN):
    """An int64 limit: None when absent or 0; -1 = unlimited; other negatives refused."""
    v = _num(d, key, field, lo, I64_MAX)
    if not v:
        return None
    if v < -1:
        raise ConfigError(field, f"{v} is not a limit (a positive number, or -1 for none)")
    return v


def _u(d, key, field, hi=U64_MAX, zero_unset=True):
    v = _num(d, key, field, 0, hi)
    return None if zero_unset and v == 0 else v


def cpu_list(s, field):
    """Check a cpuset list ("0-3,5"); return it unchanged."""
    if not s:
        return None
    for part in s.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()) or (dash and int(hi) < int(lo)):
            raise ConfigError(field, f"expected a list like 0-3,5, got {describe(s)}")
    return s


def parse_cpu_list(s):
    """"0-2,5" -> [0, 1, 2, 5]"""
    out = []
    for part in (s or "").strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


class Memory:
    __slots__ = ("limit", "reservation", "swap", "kernel", "kernel_tcp", "swappiness",
                 "disable_oom_killer", "use_hierarchy", "check_before_update")


class CPU:
    __slots__ = ("shares", "quota", "burst", "period", "realtime_runtime", "realtime_period",
                 "cpus", "mems", "idle")


class BlockIO:
    # weight_device: [(field, major, minor, weight, leaf_weight)];
    # throttle: {kind: [(field, major, minor, rate)]}, kind in THROTTLES
    __slots__ = ("weight", "leaf_weight", "weight_device", "throttle")


THROTTLES = ("throttleReadBpsDevice", "throttleWriteBpsDevice",
             "throttleReadIOPSDevice", "throttleWriteIOPSDevice")


class Resources:
    """linux.resources, checked. Each part is None when the config does not set it."""

    __slots__ = ("memory", "cpu", "pids", "block_io", "hugepages", "network_class",
                 "network_prios", "rdma", "unified", "prefix")

    def __init__(self, prefix="linux.resources"):
        self.prefix = prefix
        for k in self.__slots__[:-1]:
            setattr(self, k, None)

    def empty(self):
        return all(getattr(self, k) is None for k in self.__slots__[:-1])

    def field(self, name):
        return f"{self.prefix}.{name}" if self.prefix else name

    def v2_controllers(self):
        """The cgroup2 controllers these resources need enabled: {controller: field}."""
        need = {}
        f = self.field
        m = self.memory
        if m is not None and (m.limit or m.reservation or m.swap):
            need["memory"] = f("memory")
        c = self.cpu
        if c is not None:
            if (c.shares or c.quota or c.period or c.burst is not None
                    or c.idle is not None):
                need["cpu"] = f("cpu")
            if c.cpus or c.mems:
                need["cpuset"] = f("cpu.cpus" if c.cpus else "cpu.mems")
        if self.pids is not None:
            need["pids"] = f("pids")
        if self.block_io is not None:
            need["io"] = f("blockIO")
        if self.hugepages:
            need["hugetlb"] = f("hugepageLimits")
        if self.rdma:
            need["rdma"] = f("rdma")
        for key in self.unified or {}:
            ctrl = key.split(".", 1)[0]
            if ctrl != "cgroup":
                need.setdefault(ctrl, f(f"unified.{key}"))
        return need


def parse(d, prefix="linux.resources"):
    """linux.resources (a dict) -> Resources. `devices` is config.device_rules' business."""
    r = Resources(prefix)
    if d is None:
        return r
    if not isinstance(d, dict):
        _expect(prefix or "resources", "object", d)
    f = r.field

    mem = _obj(d, "memory", f("memory"))
    if mem:
        m = Memory()
        m.limit = _limit(mem, "limit", f("memory.limit"))
        m.reservation = _limit(mem, "reservation", f("memory.reservation"))
        m.swap = _limit(mem, "swap", f("memory.swap"))
        m.kernel = _limit(mem, "kernel", f("memory.kernel"))
        m.kernel_tcp = _limit(mem, "kernelTCP", f("memory.kernelTCP"))
        sw = mem.get("swappiness")
        if sw is not None and not isinstance(sw, bool) and sw in (-1, U64_MAX):
            sw = None  # runc's "unset"
        m.swappiness = _num({"s": sw}, "s", f("memory.swappiness"), 0, 100) \
            if sw is not None else None
        m.disable_oom_killer = _bool(mem, "disableOOMKiller", f("memory.disableOOMKiller"), None)
        m.use_hierarchy = _bool(mem, "useHierarchy", f("memory.useHierarchy"), None)
        m.check_before_update = _bool(mem, "checkBeforeUpdate", f("memory.checkBeforeUpdate"),
                                      False)
        if (m.limit and m.swap and m.limit > 0 and m.swap > 0 and m.swap < m.limit):
            raise ConfigError(f("memory.swap"), f"{m.swap} is below memory.limit {m.limit} "
                              "(swap is memory+swap, so it must be at least the limit)")
        r.memory = m

    cpu = _obj(d, "cpu", f("cpu"))
    if cpu:
        c = CPU()
        c.shares = _u(cpu, "shares", f("cpu.shares"))
        c.quota = _limit(cpu, "quota", f("cpu.quota"))
        c.burst = _u(cpu, "burst", f("cpu.burst"), zero_unset=False)
        c.period = _u(cpu, "period", f("cpu.period"))
        c.realtime_runtime = _limit(cpu, "realtimeRuntime", f("cpu.realtimeRuntime"))
        c.realtime_period = _u(cpu, "realtimePeriod", f("cpu.realtimePeriod"))
        c.cpus = cpu_list(_str(cpu, "cpus", f("cpu.cpus")), f("cpu.cpus"))
        c.mems = cpu_list(_str(cpu, "mems", f("cpu.mems")), f("cpu.mems"))
        c.idle = _num(cpu, "idle", f("cpu.idle"), 0, 1)
        r.cpu = c

    pids = _obj(d, "pids", f("pids"))
    if pids:
        lim = _num(pids, "limit", f("pids.limit"), I64_MIN, I64_MAX)
        if lim:
            r.pids = -1 if lim < 0 else lim

    bio = _obj(d, "blockIO", f("blockIO"))
    if bio:
        b = BlockIO()
        b.weight = _weight(bio, "weight", f("blockIO.weight"))
        b.leaf_weight = _weight(bio, "leafWeight", f("blockIO.leafWeight"))
        b.weight_device = []
        for i, wd in enumerate(_list(bio, "weightDevice", f("blockIO.weightDevice"))):
            fd = f(f"blockIO.weightDevice[{i}]")
            major, minor = _majmin(wd, fd)
            w = _weight(wd, "weight", fd + ".weight")
            lw = _weight(wd, "leafWeight", fd + ".leafWeight")
            if w or lw:
                b.weight_device.append((fd, major, minor, w, lw))
        b.throttle = {}
        for kind in THROTTLES:
            for i, td in enumerate(_list(bio, kind, f(f"blockIO.{kind}"))):
                fd = f(f"blockIO.{kind}[{i}]")
                major, minor = _majmin(td, fd)
                rate = _num(td, "rate", fd + ".rate", 0, U64_MAX)
                if rate is None:
                    raise ConfigError(fd + ".rate", "missing")
                b.throttle.setdefault(kind, []).append((fd, major, minor, rate))
        if b.weight or b.leaf_weight or b.weight_device or b.throttle:
            r.block_io = b

    hp = []
    for i, h in enumerate(_list(d, "hugepageLimits", f("hugepageLimits"))):
        fh = f(f"hugepageLimits[{i}]")
        if not isinstance(h, dict):
            _expect(fh, "object", h)
        size = _str(h, "pageSize", fh + ".pageSize", required=True)
        if not _page_size_ok(size):
            raise ConfigError(fh + ".pageSize", f"expected a size like 2MB or 1GB, got {describe(size)}")
        lim = _num(h, "limit", fh + ".limit", 0, U64_MAX)
        if lim is None:
            raise ConfigError(fh + ".limit", "missing")
        hp.append((fh, size, lim))
    r.hugepages = hp or None

    net = _obj(d, "network", f("network"))
    if net:
        r.network_class = _u(net, "classID", f("network.classID"), hi=U32_MAX)
        prios = []
        for i, p in enumerate(_list(net, "priorities", f("network.priorities"))):
            fp = f(f"network.priorities[{i}]")
            if not isinstance(p, dict):
                _expect(fp, "object", p)
            name = _str(p, "name", fp + ".name", required=True)
            if not name or " " in name or "/" in name:
                raise ConfigError(fp + ".name", f"not an interface name: {describe(name)}")
            prio = _num(p, "priority", fp + ".priority", 0, U32_MAX)
            prios.append((fp, name, prio or 0))
        r.network_prios = prios or None

    rdma = _obj(d, "rdma", f("rdma"))
    if rdma:
        r.rdma = {}
        for dev, lim in rdma.items():
            fr = f(f"rdma.{dev}")
            if not dev or " " in dev or "/" in dev:
                raise ConfigError(fr, "not an RDMA device name")
            if not isinstance(lim, dict):
                _expect(fr, "object", lim)
            r.rdma[dev] = (_num(lim, "hcaHandles", fr + ".hcaHandles", 0, U32_MAX),
                           _num(lim, "hcaObjects", fr + ".hcaObjects", 0, U32_MAX))

    uni = _obj(d, "unified", f("unified"))
    if uni:
        for key, val in uni.items():
            fu = f(f"unified.{key}")
            if not isinstance(val, str):
                _expect(fu, "string", val)
            check_unified_key(key, fu)
        r.unified = dict(uni)
    return r


def check_unified_key(key, field):
    """A cgroup2 file name: "<controller>.<name>", no path components."""
    if "/" in key or ".." in key or key in ("", "."):
        raise ConfigError(field, "must be a file name of the cgroup (no '/' or '..')")
    ctrl, dot, rest = key.partition(".")
    if not dot or not ctrl or not rest:
        raise ConfigError(field, "expected <controller>.<file>, e.g. memory.high")
    if key in ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "cgroup.kill",
               "cgroup.freeze", "cgroup.type"):
        raise ConfigError(field, f"{key} is managed by the runtime, not a resource")


def _weight(d, key, field):
    w = _num(d, key, field, 0, 0xFFFF)
    if not w:
        return None
    if not 10 <= w <= 1000:
        raise ConfigError(field, f"{w} is out of range (10 to 1000)")
    return w


def _majmin(d, field):
    if not isinstance(d, dict):
        _expect(field, "object", d)
    major = _num(d, "major", field + ".major", 0, I64_MAX)
    minor = _num(d, "minor", field + ".minor", 0, I64_MAX)
    if major is None:
        raise ConfigError(field + ".major", "missing")
    if minor is None:
        raise ConfigError(field + ".minor", "missing")
    return major, minor


_UNITS = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def _page_size_ok(s):
    return len(s) > 2 and s[:-2].isdigit() and s[-2:] in _UNITS


def page_size_bytes(s):
    return int(s[:-2]) * _UNITS[s[-2:]]


def page_size_name(nbytes):
    """2097152 -> "2MB", as the hugetlb controller names its files."""
    for unit in ("TB", "GB", "MB", "KB"):
        if nbytes % _UNITS[unit] == 0:
            return f"{nbytes // _UNITS[unit]}{unit}"
    return f"{nbytes}B"


# --- v1 -> v2 conversions (as runc makes them) --------------------------------------

def shares_to_weight(shares):
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000], linearly (runc 1.1)."""
    if not shares:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io(weight):
    """blkio.weight [10, 1000] -> io.weight [1, 10000], linearly."""
    if not weight:
        return 0
    return 1 + ((weight - 10) * 9999) // 990


def swap_to_v2(swap, limit, field="memory.swap"):
    """v1's memory+swap limit -> cgroup2's memory.swap.max (swap alone).
    None: leave alone; -1: "max"."""
    if limit == -1 and not swap:
        return -1  # unlimited memory: unlimited swap too, as on v1
    if not swap or swap == -1:
        return swap or None
    if not limit or limit == -1:
        raise ConfigError(field, "a swap limit needs a memory limit")
    if swap < limit:
        raise ConfigError(field, "must be at least memory.limit (it is memory+swap)")
    return swap - limit


def cpu_max(quota, period):
    """cgroup2 cpu.max from a CFS quota and period: "max 100000", "50000 100000"."""
    s = str(quota) if quota and quota > 0 else "max"
    if period:
        s += f" {period}"
    return s


# --- update: command-line flags and merging ---------------------------------------------

def merge(old, new):
    """linux.resources dicts: `new`'s set values over `old` (one level into each controller)."""
    out = dict(old or {})
    for k, v in (new or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in ("unified", "rdma"):
            inner = dict(out[k])
            inner.update({ik: iv for ik, iv in v.items() if iv is not None})
            out[k] = inner
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            inner = dict(out[k])
            inner.update(v)
            out[k] = inner
        elif v is not None:
            out[k] = v
    return out
