"""cgroup v1: one mount per controller under /sys/fs/cgroup (this VM).

On a hybrid host (v1 controllers, and a controller-less cgroup2 mount at
/sys/fs/cgroup/unified) the container also gets a directory in the cgroup2
hierarchy, as runc gives it: that is where systemd tracks processes there.
Its key in `dirs` is "". The init moves itself into the v1 directories
through `tasks`; the parent moves it into the cgroup2 one (cgroup2 has no
`tasks`), in parallel with the init's own set-up.
"""

from .. import _os as os

from ..errors import ConchError
from .common import (CGROUP_ROOT, EBUSY, EINVAL, UNIFIED, Manager, WriteError,
                     effective_device_rules, is_cgroup2, own_cgroups, read, read_int, write)

_THAWED, _FROZEN = b"THAWED", b"FROZEN"


class V1Manager(Manager):
    version = 1
    # A thread moving itself through v1 `tasks` skips cgroup_threadgroup_rwsem,
    # whose write side waits for an RCU grace period: 0.15 ms instead of 5-18 ms
    # through cgroup.procs. The init is single-threaded, so the thread is the process.
    self_join_file = "tasks"

    @classmethod
    def for_path(cls, cgpath, cid, unified=True):
        own = own_cgroups()
        dirs = {}
        for name, mypath in own.items():
            if name:
                mount = os.path.join(CGROUP_ROOT, name)
                if not os.path.isdir(mount):
                    continue
            elif unified and is_cgroup2(UNIFIED):
                mount = UNIFIED
            else:
                continue
            if cgpath.startswith("/"):
                dirs[name] = os.path.normpath(mount + cgpath)
            else:
                dirs[name] = os.path.normpath(os.path.join(mount + mypath, cgpath or cid))
        return cls(dirs)

    def ctrl(self, controller):
        """The container's directory for a controller, or None when it is not mounted."""
        d = self.dirs.get(controller)
        if d is not None:
            return d
        for name, path in self.dirs.items():
            if controller in name.split(","):
                return path
        return None

    def _init_dir(self, name, path):
        if "cpuset" in name.split(","):
            # a new cpuset cgroup starts empty; a task cannot join until it has cpus and mems
            parent = os.path.dirname(path)
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not read(os.path.join(path, f)).strip():
                    if not read(os.path.join(parent, f)).strip():
                        self._init_dir(name, parent)
                    write(os.path.join(path, f), read(os.path.join(parent, f)).strip() or b"0")

    # --- freezer ----------------------------------------------------------------

    @property
    def freezer_files(self):
        p = self.ctrl("freezer")
        return [os.path.join(p, "freezer.state")] if p else []

    def freeze(self):
        self._set_freezer(_FROZEN)

    def thaw(self):
        self._set_freezer(_THAWED)

    def _set_freezer(self, want):
        files = self.freezer_files
        if not files:
            raise ConchError("the container has no freezer cgroup (the freezer controller is not mounted)")
        path = files[0]
        import time  # noqa: PLC0415 - pause and resume only
        try:
            for attempt in range(1000):
                if attempt % 50 == 0:
                    # (re)write: a task that was forking while we froze can leave the
                    # cgroup in FREEZING; writing again retries the stragglers
                    write(path, want)
                if read(path).strip() == want:
                    return
                time.sleep(0.001 if attempt < 20 else 0.005)
        except OSError as e:
            raise ConchError(f"freezer: {path}: {e.strerror}") from None
        if want == _FROZEN:
            try:
                write(path, _THAWED)
            except OSError:
                pass
            raise ConchError("unable to freeze the container: some processes stayed FREEZING")
        raise ConchError("unable to thaw the container")

    # --- devices --------------------------------------------------------------------

    def set_devices(self, rules):
        """v1 devices controller: the rules reduced to their effective list, then
        written as the kernel keeps them (`a` and exceptions), sorted, as runc does."""
        d = self.ctrl("devices")
        if not d or rules is None:
            return
        allow_all, entries = effective_device_rules(rules)
        try:
            write(os.path.join(d, "devices.allow" if allow_all else "devices.deny"), b"a")
            for (typ, major, minor), access in sorted(entries.items()):
                rule = (f"{typ} {'*' if major < 0 else major}:{'*' if minor < 0 else minor} "
                        f"{''.join(c for c in 'rwm' if c in access)}").encode()
                write(os.path.join(d, "devices.deny" if allow_all else "devices.allow"), rule)
        except OSError as e:
            raise ConchError(f"linux.resources.devices: {e.filename}: {e.strerror}") from None

    # --- resources ------------------------------------------------------------------

    def check(self, res):
        """Refuse what this host cannot do before anything is written."""
        f = res.field
        need = []
        if res.memory is not None:
            need.append(("memory", "memory"))
        c = res.cpu
        if c is not None:
            if (c.shares or c.quota or c.period or c.burst is not None or c.idle is not None
                    or c.realtime_period or c.realtime_runtime):
                need.append(("cpu", "cpu"))
            if c.cpus or c.mems:
                need.append(("cpu", "cpuset"))
        if res.pids is not None:
            need.append(("pids.limit", "pids"))
        if res.block_io is not None:
            need.append(("blockIO", "blkio"))
        if res.hugepages:
            need.append(("hugepageLimits", "hugetlb"))
        if res.network_class is not None:
            need.append(("network.classID", "net_cls"))
        if res.network_prios:
            need.append(("network.priorities", "net_prio"))
        if res.rdma:
            need.append(("rdma", "rdma"))
        for field, ctrl in need:
            if self.ctrl(ctrl) is None:
                raise ConchError(f"{f(field)}: the {ctrl} cgroup controller is not mounted on this host")
        if res.unified:
            raise ConchError(f"{f('unified')}: cannot use unified (cgroup v2) resources on cgroup v1")
        if res.hugepages:
            d = self.ctrl("hugetlb")
            for field, size, _ in res.hugepages:
                if not os.path.exists(os.path.join(d, f"hugetlb.{size}.limit_in_bytes")):
                    from .stats import hugepage_sizes  # noqa: PLC0415
                raise ConchError(f"{field}.pageSize: huge page size {size} is not supported "
                                 f"by this host ({', '.join(hugepage_sizes()) or 'none'})")

    def _apply(self, res, j, update):
        f = res.field
        c = res.cpu
        if c is not None and (c.cpus or c.mems):
            d = self.ctrl("cpuset")
            if c.cpus:
                j.write(os.path.join(d, "cpuset.cpus"), c.cpus, f("cpu.cpus"))
            if c.mems:
                j.write(os.path.join(d, "cpuset.mems"), c.mems, f("cpu.mems"))
        if res.memory is not None:
            self._memory(res, j, update)
        if c is not None:
            self._cpu(res, j)
        if res.pids is not None:
            j.write(os.path.join(self.ctrl("pids"), "pids.max"),
                    "max" if res.pids < 0 else res.pids, f("pids.limit"))
        if res.block_io is not None:
            self._blkio(res, j)
        for field, size, limit in res.hugepages or ():
            d = self.ctrl("hugetlb")
            j.write(os.path.join(d, f"hugetlb.{size}.limit_in_bytes"), limit, field + ".limit")
            rsvd = os.path.join(d, f"hugetlb.{size}.rsvd.limit_in_bytes")
            if os.path.exists(rsvd):
                j.write(rsvd, limit, field + ".limit")
        if res.network_class is not None:
            j.write(os.path.join(self.ctrl("net_cls"), "net_cls.classid"), res.network_class,
                    f("network.classID"))
        for field, name, prio in res.network_prios or ():
            path = os.path.join(self.ctrl("net_prio"), "net_prio.ifpriomap")
            j.write(path, f"{name} {prio}", field, old=keyed_old(path, name, "0", j.keep))
        for dev, (handles, objects) in (res.rdma or {}).items():
            path = os.path.join(self.ctrl("rdma"), "rdma.max")
            j.write(path, rdma_line(dev, handles, objects), f(f"rdma.{dev}"),
                    old=keyed_old(path, dev, "hca_handle=max hca_object=max", j.keep))

    def _memory(self, res, j, update):
        f = res.field
        m = res.memory
        d = self.ctrl("memory")
        limit_f = os.path.join(d, "memory.limit_in_bytes")
        swap_f = os.path.join(d, "memory.memsw.limit_in_bytes")
        if m.kernel or m.kernel_tcp:
            os.write(2, b"conch: warning: linux.resources.memory.kernel and kernelTCP are "
                        b"ignored (kernel memory limits are deprecated)\n")
        limit, swap = m.limit, m.swap
        if limit == -1 and not swap and os.path.exists(swap_f):
            swap = -1  # unlimited memory: unlimited swap too
        if swap and not os.path.exists(swap_f):
            raise ConchError(f"{f('memory.swap')}: swap accounting is not enabled on this host "
                             "(no memory.memsw.limit_in_bytes)")
        if limit and limit > 0 and m.check_before_update and update:
            usage = read_int(os.path.join(d, "memory.usage_in_bytes"))
            if usage > limit:
                raise ConchError(f"{f('memory.limit')}: {limit} is below the current usage "
                                 f"{usage} (memory.checkBeforeUpdate)")

        def set_limit():
            try:
                j.write(limit_f, limit, f("memory.limit"))
            except WriteError as e:
                if e.errno == EBUSY:
                    raise ConchError(
                        f"{f('memory.limit')}: unable to set memory limit to {limit} (current "
                        f"usage: {read_int(os.path.join(d, 'memory.usage_in_bytes'))}, peak "
                        f"usage: {read_int(os.path.join(d, 'memory.max_usage_in_bytes'))})") from None
                if e.errno == EINVAL and swap is None and os.path.exists(swap_f):
                    raise ConchError(f"{f('memory.limit')}: {limit} is above the memory+swap "
                                     "limit; set memory.swap too") from None
                raise

        if limit and swap:
            # the kernel keeps limit <= memsw limit at every step: pick the order that does
            if swap == -1 or read_int(limit_f) < swap:
                j.write(swap_f, swap, f("memory.swap"))
                set_limit()
            else:
                set_limit()
                j.write(swap_f, swap, f("memory.swap"))
        elif limit:
            set_limit()
        elif swap:
            j.write(swap_f, swap, f("memory.swap"))
        if m.reservation:
            j.write(os.path.join(d, "memory.soft_limit_in_bytes"), m.reservation,
                    f("memory.reservation"))
        if m.swappiness is not None:
            j.write(os.path.join(d, "memory.swappiness"), m.swappiness, f("memory.swappiness"))
        if m.disable_oom_killer:
            j.write(os.path.join(d, "memory.oom_control"), 1, f("memory.disableOOMKiller"),
                    old=b"0" if j.keep else None)
        if m.use_hierarchy is not None:
            try:
                j.write(os.path.join(d, "memory.use_hierarchy"), int(m.use_hierarchy),
                        f("memory.useHierarchy"))
            except WriteError as e:
                if e.errno == EINVAL and not m.use_hierarchy:
                    raise ConchError(f"{f('memory.useHierarchy')}: this kernel only has "
                                     "hierarchical memory accounting (false is refused)") from None
                raise

    def _cpu(self, res, j):
        f = res.field
        c = res.cpu
        if not (c.shares or c.quota or c.period or c.burst is not None or c.idle is not None
                or c.realtime_period or c.realtime_runtime):
            return
        d = self.ctrl("cpu")
        if c.shares:
            path = os.path.join(d, "cpu.shares")
            j.write(path, c.shares, f("cpu.shares"))
            got = read_int(path)
            if got != c.shares:  # the kernel clamps to [2, 262144]
                raise ConchError(f"{f('cpu.shares')}: the {'maximum' if c.shares > got else 'minimum'}"
                                 f" allowed cpu-shares is {got}")
        period_f = os.path.join(d, "cpu.cfs_period_us")
        quota_f = os.path.join(d, "cpu.cfs_quota_us")
        if c.period:
            try:
                j.write(period_f, c.period, f("cpu.period"))
            except WriteError as e:
                # the old quota may not fit the new period: set the quota first
                if e.errno != EINVAL or not c.quota:
                    raise
                j.write(quota_f, c.quota, f("cpu.quota"))
                j.write(period_f, c.period, f("cpu.period"))
        if c.quota:
            j.write(quota_f, c.quota, f("cpu.quota"))
        if c.burst is not None:
            j.write(os.path.join(d, "cpu.cfs_burst_us"), c.burst, f("cpu.burst"))
        if c.realtime_period:
            j.write(os.path.join(d, "cpu.rt_period_us"), c.realtime_period, f("cpu.realtimePeriod"))
        if c.realtime_runtime:
            j.write(os.path.join(d, "cpu.rt_runtime_us"), c.realtime_runtime,
                    f("cpu.realtimeRuntime"))
        if c.idle is not None:
            j.write(os.path.join(d, "cpu.idle"), c.idle, f("cpu.idle"))

    def _blkio(self, res, j):
        f = res.field
        b = res.block_io
        d = self.ctrl("blkio")
        bfq = not os.path.exists(os.path.join(d, "blkio.weight"))
        prefix = "blkio.bfq." if bfq else "blkio."
        if b.weight:
            j.write(os.path.join(d, prefix + "weight"), b.weight, f("blockIO.weight"))
        if b.leaf_weight:
            j.write(os.path.join(d, "blkio.leaf_weight"), b.leaf_weight, f("blockIO.leafWeight"))
        for field, major, minor, w, lw in b.weight_device:
            key = f"{major}:{minor}"
            if w:
                path = os.path.join(d, prefix + "weight_device")
                j.write(path, f"{key} {w}", field + ".weight",
                        old=keyed_old(path, key, "0", j.keep))
            if lw:
                path = os.path.join(d, "blkio.leaf_weight_device")
                j.write(path, f"{key} {lw}", field + ".leafWeight",
                        old=keyed_old(path, key, "0", j.keep))
        for kind, entries in b.throttle.items():
            fname = V1_THROTTLE_FILES[kind]
            path = os.path.join(d, fname)
            for field, major, minor, rate in entries:
                key = f"{major}:{minor}"
                j.write(path, f"{key} {rate}", field, old=keyed_old(path, key, "0", j.keep))

    # --- stats ----------------------------------------------------------------------

    def stats(self):
        from .stats import v1_stats  # noqa: PLC0415 - events only
        return v1_stats(self)

    def oom_watch(self):
        d = self.ctrl("memory")
        if not d:
            return None
        from .stats import OOMWatchV1  # noqa: PLC0415
        return OOMWatchV1(d)


V1_THROTTLE_FILES = {
    "throttleReadBpsDevice": "blkio.throttle.read_bps_device",
    "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
    "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
    "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device",
}


def rdma_line(dev, handles, objects):
    h = "max" if handles is None else handles
    o = "max" if objects is None else objects
    return f"{dev} hca_handle={h} hca_object={o}"


def keyed_old(path, key, default, keep):
    """For a file of "key value" lines: the line to write back to restore `key`."""
    if not keep:
        return None
    try:
        for line in read(path).decode().splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return f"{k} {v}".encode()
    except OSError:
        pass
    return f"{key} {default}".encode()
