"""Measuring a container's cgroup: runc's stats object (`events --stats`), from
the v1 or the v2 files, and the OOM watchers `events` polls. Only `events`
imports this module.
"""

from .. import _os as os

from ..errors import ConchError
from .common import read, read_int, read_keyed, read_str, write

U64_MAX = (1 << 64) - 1

def hugepage_sizes():
    """The huge page sizes of this host, as the hugetlb controller names them (2MB, 1GB)."""
    from .resources import page_size_name  # noqa: PLC0415
    out = []
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return out
    for n in sorted(names):
        if n.startswith("hugepages-") and n.endswith("kB"):
            out.append(page_size_name(int(n[10:-2]) * 1024))
    return out


# --- stats ------------------------------------------------------------------------------

def _ints(path):
    try:
        return [int(x) for x in read(path).split()]
    except (OSError, ValueError):
        return []


def _entry(d, prefix, with_usage=True):
    """A runc MemoryEntry from <prefix>.{limit_in_bytes,usage_in_bytes,max_usage_in_bytes,failcnt}."""
    e = {"limit": read_int(os.path.join(d, prefix + "limit_in_bytes"))}
    if with_usage:
        u = read_int(os.path.join(d, prefix + "usage_in_bytes"))
        if u:
            e["usage"] = u
        mx = read_int(os.path.join(d, prefix + "max_usage_in_bytes"))
        if mx:
            e["max"] = mx
    e["failcnt"] = read_int(os.path.join(d, prefix + "failcnt"))
    return e


def _blkio_entries(path):
    out = []
    try:
        lines = read(path).decode().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        if len(parts) < 3 or ":" not in parts[0]:
            continue  # "Total N"
        major, _, minor = parts[0].partition(":")
        e = {}
        if int(major):
            e["major"] = int(major)
        if int(minor):
            e["minor"] = int(minor)
        e["op"] = parts[1]
        if int(parts[2]):
            e["value"] = int(parts[2])
        out.append(e)
    return out


def v1_stats(mgr):
    """runc's stats object (libcontainer types, JSON names and omitempty rules) from v1 files."""
    out = {}
    cpu = {}
    usage = {}
    acct = mgr.ctrl("cpuacct")
    if acct:
        total = read_int(os.path.join(acct, "cpuacct.usage"))
        if total:
            usage["total"] = total
        for key, fname in (("percpu", "cpuacct.usage_percpu"),
                           ("percpu_kernel", "cpuacct.usage_percpu_sys"),
                           ("percpu_user", "cpuacct.usage_percpu_user")):
            vals = _ints(os.path.join(acct, fname))
            if vals:
                usage[key] = vals
        st = read_keyed(os.path.join(acct, "cpuacct.stat"))
        tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        usage["kernel"] = st.get("system", 0) * tick
        usage["user"] = st.get("user", 0) * tick
    else:
        usage.update(kernel=0, user=0)
    cpu["usage"] = usage
    thr = {}
    cd = mgr.ctrl("cpu")
    if cd:
        st = read_keyed(os.path.join(cd, "cpu.stat"))
        for key, name in (("periods", "nr_periods"), ("throttledPeriods", "nr_throttled"),
                          ("throttledTime", "throttled_time")):
            if st.get(name):
                thr[key] = st[name]
    cpu["throttling"] = thr
    out["cpu"] = cpu

    cs = {}
    sd = mgr.ctrl("cpuset")
    if sd:
        from .resources import parse_cpu_list  # noqa: PLC0415
        cpus = parse_cpu_list(read_str(os.path.join(sd, "cpuset.cpus"), ""))
        if cpus:
            cs["cpus"] = cpus
        cs["cpu_exclusive"] = read_int(os.path.join(sd, "cpuset.cpu_exclusive"))
        mems = parse_cpu_list(read_str(os.path.join(sd, "cpuset.mems"), ""))
        if mems:
            cs["mems"] = mems
        for key in ("mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                    "memory_spread_slab", "memory_pressure", "sched_load_balance",
                    "sched_relax_domain_level"):
            cs[key] = read_int(os.path.join(sd, f"cpuset.{key}"))
    else:
        cs = {"cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0, "memory_migrate": 0,
              "memory_spread_page": 0, "memory_spread_slab": 0, "memory_pressure": 0,
              "sched_load_balance": 0, "sched_relax_domain_level": 0}
    out["cpuset"] = cs

    mem = {}
    md = mgr.ctrl("memory")
    if md:
        raw = read_keyed(os.path.join(md, "memory.stat"))
        if raw.get("cache"):
            mem["cache"] = raw["cache"]
        mem["usage"] = _entry(md, "memory.")
        mem["swap"] = _entry(md, "memory.memsw.")
        mem["kernel"] = _entry(md, "memory.kmem.")
        mem["kernelTCP"] = _entry(md, "memory.kmem.tcp.")
        if raw:
            mem["raw"] = dict(sorted(raw.items()))
    else:
        zero = {"limit": 0, "failcnt": 0}
        mem = {"usage": dict(zero), "swap": dict(zero), "kernel": dict(zero),
               "kernelTCP": dict(zero)}
    out["memory"] = mem

    pd = mgr.ctrl("pids")
    out["pids"] = _pids(pd) if pd else {}

    blk = {}
    bd = mgr.ctrl("blkio")
    if bd:
        if os.path.exists(os.path.join(bd, "blkio.io_serviced_recursive")):
            pre = "blkio."
        elif os.path.exists(os.path.join(bd, "blkio.bfq.io_serviced_recursive")):
            pre = "blkio.bfq."
        else:
            pre = "blkio.throttle."
        for key, name in (("ioServiceBytesRecursive", "io_service_bytes_recursive"),
                          ("ioServicedRecursive", "io_serviced_recursive"),
                          ("ioQueueRecursive", "io_queued_recursive"),
                          ("ioServiceTimeRecursive", "io_service_time_recursive"),
                          ("ioWaitTimeRecursive", "io_wait_time_recursive"),
                          ("ioMergedRecursive", "io_merged_recursive"),
                          ("ioTimeRecursive", "time_recursive"),
                          ("sectorsRecursive", "sectors_recursive")):
            entries = _blkio_entries(os.path.join(bd, pre + name))
            if not entries and pre != "blkio.throttle." and key in (
                    "ioServiceBytesRecursive", "ioServicedRecursive"):
                entries = _blkio_entries(os.path.join(bd, "blkio.throttle." + name))
            if entries:
                blk[key] = entries
    out["blkio"] = blk

    huge = {}
    hd = mgr.ctrl("hugetlb")
    if hd:
        for size in hugepage_sizes():
            pre = os.path.join(hd, f"hugetlb.{size}.")
            e = {}
            u = read_int(pre + "usage_in_bytes")
            if u:
                e["usage"] = u
            mx = read_int(pre + "max_usage_in_bytes")
            if mx:
                e["max"] = mx
            e["failcnt"] = read_int(pre + "failcnt")
            huge[size] = e
    out["hugetlb"] = huge
    out["intel_rdt"] = {}
    out["network_interfaces"] = None
    return out


class OOMWatchV1:
    """OOM notifications of a v1 memory cgroup: an eventfd registered through
    cgroup.event_control on memory.oom_control. The eventfd also fires when
    the cgroup is removed."""

    def __init__(self, d):
        self.dir = d
        self.fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        ofd = os.open(os.path.join(d, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
        try:
            write(os.path.join(d, "cgroup.event_control"), f"{self.fd} {ofd}")
        except OSError as e:
            os.close(self.fd)
            raise ConchError(f"registering for OOM events: {e.strerror}") from None
        finally:
            os.close(ofd)

    def events(self):
        """How many OOM notifications arrived since the last call (0 when none)."""
        try:
            os.eventfd_read(self.fd)
        except BlockingIOError:
            return 0
        if not os.path.exists(os.path.join(self.dir, "cgroup.event_control")):
            return 0  # the cgroup was removed
        return 1

    def close(self):
        os.close(self.fd)


def _max_int(path):
    v = read_str(path, "")
    if v == "max":
        return U64_MAX
    try:
        return int(v)
    except ValueError:
        return 0


def v2_stats(d):
    """runc's stats object from cgroup2 files (what runc 1.1 reports on v2)."""
    out = {}
    st = read_keyed(os.path.join(d, "cpu.stat"))
    usage = {}
    if st.get("usage_usec"):
        usage["total"] = st["usage_usec"] * 1000
    usage["kernel"] = st.get("system_usec", 0) * 1000
    usage["user"] = st.get("user_usec", 0) * 1000
    thr = {}
    for key, name, mul in (("periods", "nr_periods", 1), ("throttledPeriods", "nr_throttled", 1),
                           ("throttledTime", "throttled_usec", 1000)):
        if st.get(name):
            thr[key] = st[name] * mul
    out["cpu"] = {"usage": usage, "throttling": thr}

    cs = {}
    from .resources import parse_cpu_list  # noqa: PLC0415
    cpus = parse_cpu_list(read_str(os.path.join(d, "cpuset.cpus.effective"), ""))
    if cpus:
        cs["cpus"] = cpus
    cs["cpu_exclusive"] = 0
    mems = parse_cpu_list(read_str(os.path.join(d, "cpuset.mems.effective"), ""))
    if mems:
        cs["mems"] = mems
    for key in ("mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                "memory_spread_slab", "memory_pressure", "sched_load_balance",
                "sched_relax_domain_level"):
        cs[key] = 0
    out["cpuset"] = cs

    mem = {}
    raw = read_keyed(os.path.join(d, "memory.stat"))
    if raw.get("file"):
        mem["cache"] = raw["file"]
    u = {"limit": _max_int(os.path.join(d, "memory.max"))}
    cur = read_int(os.path.join(d, "memory.current"))
    if cur:
        u["usage"] = cur
    peak = read_int(os.path.join(d, "memory.peak"))
    if peak:
        u["max"] = peak
    u["failcnt"] = read_keyed(os.path.join(d, "memory.events")).get("max", 0)
    mem["usage"] = u
    # v1 reports swap as memory+swap: so does runc on v2
    s = {"limit": _max_int(os.path.join(d, "memory.swap.max"))}
    if s["limit"] != U64_MAX and os.path.exists(os.path.join(d, "memory.swap.max")):
        s["limit"] += u["limit"] if u["limit"] != U64_MAX else 0
    su = read_int(os.path.join(d, "memory.swap.current")) + cur
    if su:
        s["usage"] = su
    s["failcnt"] = 0
    mem["swap"] = s
    mem["kernel"] = {"limit": 0, "failcnt": 0}
    mem["kernelTCP"] = {"limit": 0, "failcnt": 0}
    if raw:
        mem["raw"] = dict(sorted(raw.items()))
    out["memory"] = mem

    out["pids"] = _pids(d)

    blk = {}
    try:
        lines = read(os.path.join(d, "io.stat")).decode().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        for key, name, op in (("ioServiceBytesRecursive", "rbytes", "Read"),
                              ("ioServiceBytesRecursive", "wbytes", "Write"),
                              ("ioServicedRecursive", "rios", "Read"),
                              ("ioServicedRecursive", "wios", "Write")):
            e = {}
            if int(major):
                e["major"] = int(major)
            if int(minor):
                e["minor"] = int(minor)
            e["op"] = op
            v = int(kv.get(name, 0))
            if v:
                e["value"] = v
            blk.setdefault(key, []).append(e)
    out["blkio"] = blk

    huge = {}
    try:
        names = sorted(n for n in os.listdir(d) if n.startswith("hugetlb.") and n.endswith(".current")
                       and ".rsvd." not in n)
    except OSError:
        names = []
    for n in names:
        size = n[len("hugetlb."):-len(".current")]
        e = {}
        v = read_int(os.path.join(d, n))
        if v:
            e["usage"] = v
        e["failcnt"] = read_keyed(os.path.join(d, f"hugetlb.{size}.events")).get("max", 0)
        huge[size] = e
    out["hugetlb"] = huge
    out["intel_rdt"] = {}
    out["network_interfaces"] = None
    return out


class OOMWatchV2:
    """OOM kills of a cgroup2 memory controller: memory.events, which kernfs
    notifies (POLLPRI) on every change; its oom_kill counter is compared."""

    def __init__(self, d):
        self.path = os.path.join(d, "memory.events")
        self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        self.seen = self._count()

    def _count(self):
        try:
            os.lseek(self.fd, 0, 0)
            data = os.read(self.fd, 4096).decode()
        except OSError:
            return None
        kv = {}
        for line in data.splitlines():
            k, _, v = line.partition(" ")
            kv[k] = int(v) if v.isdigit() else 0
        return kv.get("oom_kill", 0)

    def events(self):
        n = self._count()
        if n is None:
            return 0
        new = max(0, n - self.seen)
        self.seen = n
        return new

    def close(self):
        os.close(self.fd)


def _pids(d):
    """runc's pids stats of a directory with pids.current and pids.max (v1 or v2)."""
    pids = {}
    cur = read_int(os.path.join(d, "pids.current"))
    lim = read_int(os.path.join(d, "pids.max"))
    if cur:
        pids["current"] = cur
    if lim:
        pids["limit"] = lim
    return pids
