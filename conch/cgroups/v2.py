"""cgroup v2: one unified hierarchy (at /sys/fs/cgroup on a v2 host).

The container's directory is `dirs[""]`. Controllers are enabled in the
ancestors' cgroup.subtree_control only when the config needs them (and only
where they are not enabled yet). Freezing is cgroup.freeze (done when
cgroup.events says "frozen 1"), killing everything is cgroup.kill, device
rules are an eBPF program (bpf.py), OOM kills are counted in memory.events.

This VM's cgroup2 mount (/sys/fs/cgroup/unified) has no controllers: the
tests run freeze, procs, kill and the device program there for real, and the
controller files on fixture directories.
"""

from .. import _os as os

from ..errors import ConchError
from .common import (CGROUP_ROOT, EBUSY, ENOENT, Manager, WriteError,
                     effective_device_rules, is_cgroup2, own_cgroups, read_int, read_keyed, read_str,
                     write)

V2_THROTTLE_KEYS = {
    "throttleReadBpsDevice": "rbps",
    "throttleWriteBpsDevice": "wbps",
    "throttleReadIOPSDevice": "riops",
    "throttleWriteIOPSDevice": "wiops",
}


def mount_root(path):
    """The root of the cgroup2 mount that holds `path`."""
    path = os.path.normpath(path)
    while True:
        parent = os.path.dirname(path)
        if parent == path or not is_cgroup2(parent):
            return path
        path = parent


class V2Manager(Manager):
    version = 2

    @classmethod
    def for_path(cls, cgpath, cid, root=CGROUP_ROOT):
        own = own_cgroups().get("", "/")
        if cgpath.startswith("/"):
            path = os.path.normpath(root + cgpath)
        else:
            path = os.path.normpath(os.path.join(root + own, cgpath or cid))
        return cls({"": path})

    @property
    def path(self):
        return self.dirs[""]

    # --- controllers ----------------------------------------------------------------

    def enable(self, controllers):
        """Enable controllers ({controller: the config field that needs it}) for the
        container's cgroup: in each ancestor's cgroup.subtree_control, from the
        mount's root down, where missing."""
        if not controllers:
            return
        root = mount_root(self.path)
        chain = []
        p = os.path.dirname(self.path)
        while len(p) >= len(root):
            chain.append(p)
            if p == root:
                break
            p = os.path.dirname(p)
        for anc in reversed(chain):
            have = set(read_str(os.path.join(anc, "cgroup.subtree_control"), "").split())
            avail = set(read_str(os.path.join(anc, "cgroup.controllers"), "").split())
            for c in sorted(set(controllers) - have):
                if c not in avail:
                    raise ConchError(f"{controllers[c]}: the {c} controller is not available "
                                     f"(not in {anc}/cgroup.controllers)")
                try:
                    write(os.path.join(anc, "cgroup.subtree_control"), f"+{c}")
                except OSError as e:
                    raise ConchError(f"{controllers[c]}: enabling the {c} controller in {anc}: "
                                     f"{e.strerror}") from None

    # --- freezer, kill ----------------------------------------------------------------

    @property
    def freezer_files(self):
        return [os.path.join(self.path, "cgroup.freeze")]

    def freeze(self):
        self._freeze(1)

    def thaw(self):
        self._freeze(0)

    def _freeze(self, want):
        try:
            write(os.path.join(self.path, "cgroup.freeze"), str(want))
        except OSError as e:
            raise ConchError(f"freezer: {self.path}/cgroup.freeze: {e.strerror}") from None
        if not wait_event(self.path, "frozen", want, 5000):
            if want:
                try:
                    write(os.path.join(self.path, "cgroup.freeze"), "0")
                except OSError:
                    pass
            raise ConchError(f"unable to {'freeze' if want else 'thaw'} the container "
                             "(cgroup.events did not say so in 5 s)")

    def frozen(self):
        return read_keyed(os.path.join(self.path, "cgroup.events")).get("frozen") == 1

    # kill(): common.Manager's, cgroup.kill of dirs[""]

    # --- devices ----------------------------------------------------------------------

    def set_devices(self, rules):
        if rules is None:
            return
        from . import bpf  # noqa: PLC0415 - only when the config has device rules
        allow_all, entries = effective_device_rules(rules)
        bpf.apply(self.path, allow_all, entries)

    # --- resources --------------------------------------------------------------------

    def check(self, res):
        f = res.field
        c = res.cpu
        if c is not None and (c.realtime_period or c.realtime_runtime):
            raise ConchError(f"{f('cpu.realtimeRuntime' if c.realtime_runtime else 'cpu.realtimePeriod')}"
                             ": realtime CPU limits are not supported on cgroup v2")
        if res.network_class is not None or res.network_prios:
            raise ConchError(f"{f('network')}: net_cls and net_prio do not exist on cgroup v2")
        if res.block_io is not None and res.block_io.leaf_weight:
            raise ConchError(f"{f('blockIO.leafWeight')}: there is no leaf weight on cgroup v2")
        for field, size, _ in res.hugepages or ():
            if not os.path.exists(os.path.join(self.path, f"hugetlb.{size}.max")) and \
                    "hugetlb" in read_str(os.path.join(self.path, "cgroup.controllers"), ""):
                raise ConchError(f"{field}.pageSize: huge page size {size} is not supported by this host")

    def _prepare(self, res):
        self.enable(res.v2_controllers())

    def _apply(self, res, j, update):
        from .resources import cpu_max, shares_to_weight  # noqa: PLC0415
        f = res.field
        d = self.path
        c = res.cpu
        if c is not None:
            if c.cpus:
                j.write(os.path.join(d, "cpuset.cpus"), c.cpus, f("cpu.cpus"))
            if c.mems:
                j.write(os.path.join(d, "cpuset.mems"), c.mems, f("cpu.mems"))
        m = res.memory
        if m is not None:
            self._memory(res, j, update)
        if c is not None:
            if c.shares:
                j.write(os.path.join(d, "cpu.weight"), shares_to_weight(c.shares), f("cpu.shares"))
            if c.quota or c.period:
                j.write(os.path.join(d, "cpu.max"), cpu_max(c.quota, c.period),
                        f("cpu.quota" if c.quota else "cpu.period"))
            if c.burst is not None:
                j.write(os.path.join(d, "cpu.max.burst"), c.burst, f("cpu.burst"))
            if c.idle is not None:
                j.write(os.path.join(d, "cpu.idle"), c.idle, f("cpu.idle"))
        if res.pids is not None:
            j.write(os.path.join(d, "pids.max"), "max" if res.pids < 0 else res.pids,
                    f("pids.limit"))
        if res.block_io is not None:
            self._io(res, j)
        for field, size, limit in res.hugepages or ():
            j.write(os.path.join(d, f"hugetlb.{size}.max"), limit, field + ".limit")
            rsvd = os.path.join(d, f"hugetlb.{size}.rsvd.max")
            if os.path.exists(rsvd):
                j.write(rsvd, limit, field + ".limit")
        for dev, (handles, objects) in (res.rdma or {}).items():
            from .v1 import keyed_old, rdma_line  # noqa: PLC0415
            path = os.path.join(d, "rdma.max")
            j.write(path, rdma_line(dev, handles, objects), f(f"rdma.{dev}"),
                    old=keyed_old(path, dev, "hca_handle=max hca_object=max", j.keep))
        # unified last: it overrides what the v1-style fields converted to
        for key, val in (res.unified or {}).items():
            field = f(f"unified.{key}")
            try:
                j.write(os.path.join(d, key), val, field)
            except WriteError as e:
                if e.errno == ENOENT:
                    ctrl = key.split(".", 1)[0]
                    avail = read_str(os.path.join(d, "cgroup.controllers"), "").split()
                    if ctrl != "cgroup" and ctrl not in avail:
                        raise ConchError(f"{field}: the {ctrl} controller is not available "
                                         "(not enabled for this cgroup)") from None
                    raise ConchError(f"{field}: no such cgroup file {key!r}") from None
                raise

    def _memory(self, res, j, update):
        from .resources import swap_to_v2  # noqa: PLC0415
        f = res.field
        m = res.memory
        d = self.path
        swap = swap_to_v2(m.swap, m.limit, f("memory.swap"))
        if swap is not None:
            s = "max" if swap == -1 else str(swap)
            path = os.path.join(d, "memory.swap.max")
            if os.path.exists(path) or s not in ("max", "0"):
                j.write(path, s, f("memory.swap"))  # no swap accounting: "max" and 0 are moot
        if m.limit:
            if m.limit > 0 and m.check_before_update and update:
                usage = read_int(os.path.join(d, "memory.current"))
                if usage > m.limit:
                    raise ConchError(f"{f('memory.limit')}: {m.limit} is below the current "
                                     f"usage {usage} (memory.checkBeforeUpdate)")
            try:
                j.write(os.path.join(d, "memory.max"), "max" if m.limit == -1 else m.limit,
                        f("memory.limit"))
            except WriteError as e:
                if e.errno == EBUSY:
                    raise ConchError(f"{f('memory.limit')}: unable to set memory limit to "
                                     f"{m.limit} (current usage: "
                                     f"{read_int(os.path.join(d, 'memory.current'))})") from None
                raise
        if m.reservation:
            j.write(os.path.join(d, "memory.low"), "max" if m.reservation == -1 else m.reservation,
                    f("memory.reservation"))

    def _io(self, res, j):
        from .resources import blkio_weight_to_io  # noqa: PLC0415
        f = res.field
        b = res.block_io
        d = self.path
        bfq = os.path.exists(os.path.join(d, "io.bfq.weight"))
        if b.weight:
            if bfq:
                j.write(os.path.join(d, "io.bfq.weight"), b.weight, f("blockIO.weight"))
            else:
                j.write(os.path.join(d, "io.weight"), f"default {blkio_weight_to_io(b.weight)}",
                        f("blockIO.weight"))
        from .v1 import keyed_old  # noqa: PLC0415
        for field, major, minor, w, _ in b.weight_device:
            if not w:
                continue
            key = f"{major}:{minor}"
            if bfq:
                path = os.path.join(d, "io.bfq.weight")
                j.write(path, f"{key} {w}", field + ".weight", old=keyed_old(path, key, "default", j.keep))
            else:
                path = os.path.join(d, "io.weight")
                j.write(path, f"{key} {blkio_weight_to_io(w)}", field + ".weight",
                        old=keyed_old(path, key, "default", j.keep))
        limits = {}
        for kind, entries in b.throttle.items():
            for field, major, minor, rate in entries:
                limits.setdefault(f"{major}:{minor}", []).append(
                    (field, f"{V2_THROTTLE_KEYS[kind]}={rate if rate else 'max'}"))
        path = os.path.join(d, "io.max")
        for key, items in limits.items():
            j.write(path, f"{key} " + " ".join(v for _, v in items), items[0][0],
                    old=(f"{key} rbps=max wbps=max riops=max wiops=max".encode()
                         if j.keep else None))

    # --- stats ------------------------------------------------------------------------

    def stats(self):
        from .stats import v2_stats  # noqa: PLC0415 - events only
        return v2_stats(self.path)

    def oom_watch(self):
        if not os.path.exists(os.path.join(self.path, "memory.events")):
            return None
        from .stats import OOMWatchV2  # noqa: PLC0415
        return OOMWatchV2(self.path)


def wait_event(path, key, want, timeout_ms):
    """Wait until cgroup.events has `key want` (kernfs notifies with POLLPRI)."""
    import select  # noqa: PLC0415 - pause and resume only
    fd = os.open(os.path.join(path, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
    try:
        p = select.poll()
        p.register(fd, select.POLLPRI)
        import time  # noqa: PLC0415
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            os.lseek(fd, 0, 0)
            for line in os.read(fd, 4096).decode().splitlines():
                k, _, v = line.partition(" ")
                if k == key and v == str(want):
                    return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            p.poll(min(left, 0.05) * 1000)
    finally:
        os.close(fd)
