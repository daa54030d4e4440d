"""cgroups without a container: linux.resources parsing and conversions, the
cgroupfs drivers writing fixture directories (the v2 controllers this VM's
cgroup2 mount lacks), the device program (compiled, then run by a small
interpreter of its instructions), stats from fixture files, and the systemd
driver's D-Bus messages (checked byte by byte, and against a real dbus-daemon).
"""

import os
import shutil
import subprocess
import time

import pytest
from helpers import SignalState

from conch.cgroups import bpf, resources
from conch.cgroups.common import effective_device_rules
from conch.cgroups.systemd import (Connection, Message, Reader, Variant, Writer, expand_slice,
                                   parse_path, properties, unit_properties)
from conch.cgroups.v1 import V1Manager
from conch.cgroups.stats import v2_stats
from conch.cgroups.v2 import V2Manager
from conch.config import DEFAULT_DEVICE_RULES
from conch.control import parse_duration, parse_ram
from conch.errors import ConchError, ConfigError


def parse(d):
    return resources.parse(d)


# --- linux.resources: fields named in errors ------------------------------------------

@pytest.mark.parametrize("res,field", [
    ({"memory": {"limit": "x"}}, 'linux.resources.memory.limit: expected integer, got "x"'),
    ({"memory": {"limit": -5}}, "linux.resources.memory.limit: -5 is not a limit"),
    ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness: 101 is out of range"),
    ({"memory": {"limit": 100, "swap": 50}}, "linux.resources.memory.swap: 50 is below memory.limit"),
    ({"memory": {"disableOOMKiller": 1}}, "linux.resources.memory.disableOOMKiller: expected boolean"),
    ({"cpu": {"cpus": "0-"}}, "linux.resources.cpu.cpus: expected a list like 0-3,5"),
    ({"cpu": {"mems": "a"}}, "linux.resources.cpu.mems: expected a list like 0-3,5"),
    ({"cpu": {"shares": -1}}, "linux.resources.cpu.shares: -1 is out of range"),
    ({"cpu": {"idle": 2}}, "linux.resources.cpu.idle: 2 is out of range"),
    ({"cpu": {"quota": 1.5}}, "linux.resources.cpu.quota: expected integer, got 1.5"),
    ({"pids": {"limit": "10"}}, 'linux.resources.pids.limit: expected integer, got "10"'),
    ({"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight: 5 is out of range (10 to 1000)"),
    ({"blockIO": {"weightDevice": [{"major": 8, "weight": 100}]}},
     "linux.resources.blockIO.weightDevice[0].minor: missing"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}},
     "linux.resources.blockIO.throttleReadBpsDevice[0].rate: missing"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 0}]},
     'linux.resources.hugepageLimits[0].pageSize: expected a size like 2MB'),
    ({"network": {"priorities": [{"name": "eth0", "priority": "x"}]}},
     "linux.resources.network.priorities[0].priority: expected integer"),
    ({"rdma": {"mlx4_0": {"hcaHandles": -1}}}, "linux.resources.rdma.mlx4_0.hcaHandles: -1 is out of range"),
    ({"unified": {"memory.max": 5}}, "linux.resources.unified.memory.max: expected string, got 5"),
    ({"unified": {"../memory.max": "1"}}, "linux.resources.unified.../memory.max: must be a file name"),
    ({"unified": {"memory/max": "1"}}, "linux.resources.unified.memory/max: must be a file name"),
    ({"unified": {"cgroup.procs": "1"}}, "linux.resources.unified.cgroup.procs: cgroup.procs is managed"),
    ({"unified": {"nodot": "1"}}, "linux.resources.unified.nodot: expected <controller>.<file>"),
    ({"memory": []}, "linux.resources.memory: expected object, got an array"),
])
def test_bad_fields_are_named(res, field):
    with pytest.raises(ConfigError) as e:
        parse(res)
    assert field in str(e.value)


def test_zero_means_unset_as_in_runc():
    r = parse({"memory": {"limit": 0, "reservation": 0, "swap": 0}, "cpu": {"shares": 0, "quota": 0,
               "period": 0}, "pids": {"limit": 0}, "blockIO": {"weight": 0}})
    m, c = r.memory, r.cpu
    assert (m.limit, m.reservation, m.swap, c.shares, c.quota, c.period) == (None,) * 6
    assert r.pids is None and r.block_io is None
    assert parse({"pids": {"limit": -7}}).pids == -1
    assert parse({"memory": {"swappiness": 0}}).memory.swappiness == 0  # 0 is a value here
    assert parse({"memory": {"swappiness": -1}}).memory.swappiness is None  # runc's "unset"
    assert parse({"cpu": {"idle": 0, "burst": 0}}).cpu.idle == 0


def test_v2_controllers_needed():
    r = parse({"memory": {"limit": 1 << 20}, "cpu": {"shares": 100, "cpus": "0"},
               "pids": {"limit": 5}, "unified": {"io.max": "8:0 rbps=1", "cgroup.max.depth": "3"}})
    assert r.v2_controllers() == {"memory": "linux.resources.memory", "cpu": "linux.resources.cpu",
                                  "cpuset": "linux.resources.cpu.cpus",
                                  "pids": "linux.resources.pids",
                                  "io": "linux.resources.unified.io.max"}


# --- conversions -----------------------------------------------------------------------------

@pytest.mark.parametrize("shares,weight", [(0, 0), (2, 1), (1024, 39), (262144, 10000), (512, 20)])
def test_shares_to_weight(shares, weight):
    assert resources.shares_to_weight(shares) == weight


@pytest.mark.parametrize("blkio,io", [(0, 0), (10, 1), (500, 4950), (1000, 10000), (100, 910)])
def test_blkio_weight_to_io_weight(blkio, io):
    assert resources.blkio_weight_to_io(blkio) == io


@pytest.mark.parametrize("swap,limit,out", [
    (None, 100, None), (-1, 100, -1), (None, -1, -1), (300, 100, 200), (100, 100, 0)])
def test_swap_to_v2(swap, limit, out):
    assert resources.swap_to_v2(swap, limit) == out


def test_swap_to_v2_refuses_swap_without_limit():
    with pytest.raises(ConfigError, match="a swap limit needs a memory limit"):
        resources.swap_to_v2(300, None)


def test_cpu_max():
    assert resources.cpu_max(50000, 100000) == "50000 100000"
    assert resources.cpu_max(-1, None) == "max"
    assert resources.cpu_max(None, 20000) == "max 20000"


def test_merge_keeps_what_update_does_not_set():
    old = {"memory": {"limit": 100, "swap": 200}, "cpu": {"shares": 5}}
    assert resources.merge(old, {"memory": {"limit": 150, "swap": None}, "pids": {"limit": 3}}) == \
        {"memory": {"limit": 150, "swap": 200}, "cpu": {"shares": 5}, "pids": {"limit": 3}}


def test_units_on_the_command_line():
    assert parse_ram("512m") == 512 << 20 and parse_ram("1.5g") == 3 << 29
    assert parse_ram("1024") == 1024 and parse_ram("-1") == -1 and parse_ram("2KiB") == 2048
    with pytest.raises(ConchError):
        parse_ram("12q")
    assert parse_duration("5s") == 5 and parse_duration("100ms") == pytest.approx(0.1)
    assert parse_duration("1m30s") == 90
    for bad in ("5", "x", "1.2.3s", ""):
        with pytest.raises(ConchError):
            parse_duration(bad)


# --- v1 on fixture directories ----------------------------------------------------------------

V1_FILES = {
    "memory": {"memory.limit_in_bytes": "9223372036854771712", "memory.memsw.limit_in_bytes":
               "9223372036854771712", "memory.soft_limit_in_bytes": "9223372036854771712",
               "memory.swappiness": "60", "memory.oom_control": "0", "memory.usage_in_bytes": "4096",
               "memory.use_hierarchy": "1"},
    "cpu": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1",
            "cpu.cfs_burst_us": "0", "cpu.rt_period_us": "1000000", "cpu.rt_runtime_us": "0",
            "cpu.idle": "0"},
    "cpuset": {"cpuset.cpus": "0-1", "cpuset.mems": "0"},
    "pids": {"pids.max": "max"},
    "blkio": {"blkio.bfq.weight": "100", "blkio.bfq.weight_device": "",
              "blkio.throttle.read_bps_device": "", "blkio.throttle.write_iops_device": ""},
}


def v1_fixture(tmp_path, files=V1_FILES):
    dirs = {}
    for ctrl, fs in files.items():
        d = tmp_path / ctrl
        d.mkdir()
        for name, value in fs.items():
            (d / name).write_text(value)
        dirs[ctrl] = str(d)
    return V1Manager(dirs)


def read(d, name):
    with open(os.path.join(d, name)) as f:
        return f.read()


def test_v1_writes_what_is_set_and_nothing_else(tmp_path):
    m = v1_fixture(tmp_path)
    r = parse({"memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20,
                          "swappiness": 10, "disableOOMKiller": True},
               "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000,
                       "cpus": "0", "mems": "0", "idle": 1},
               "pids": {"limit": -1},
               "blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
                           "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]}})
    m.apply(r)
    d = m.dirs
    assert read(d["memory"], "memory.limit_in_bytes") == str(64 << 20)
    assert read(d["memory"], "memory.memsw.limit_in_bytes") == str(128 << 20)
    assert read(d["memory"], "memory.soft_limit_in_bytes") == str(32 << 20)
    assert read(d["memory"], "memory.swappiness") == "10"
    assert read(d["memory"], "memory.oom_control") == "1"
    assert read(d["memory"], "memory.use_hierarchy") == "1"  # not set: untouched
    assert read(d["cpu"], "cpu.cfs_quota_us") == "50000"
    assert read(d["cpu"], "cpu.cfs_burst_us") == "1000" and read(d["cpu"], "cpu.idle") == "1"
    assert read(d["cpu"], "cpu.rt_runtime_us") == "0"
    assert read(d["cpuset"], "cpuset.cpus") == "0"
    assert read(d["pids"], "pids.max") == "max"
    assert read(d["blkio"], "blkio.bfq.weight") == "300"  # no blkio.weight: the BFQ file
    assert read(d["blkio"], "blkio.bfq.weight_device") == "8:0 200"
    assert read(d["blkio"], "blkio.throttle.read_bps_device") == "8:0 1048576"


def test_v1_controller_not_mounted_is_named(tmp_path):
    m = v1_fixture(tmp_path)
    for res, msg in [({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]},
                      "linux.resources.hugepageLimits: the hugetlb cgroup controller is not mounted"),
                     ({"network": {"classID": 5}},
                      "linux.resources.network.classID: the net_cls cgroup controller is not mounted"),
                     ({"rdma": {"mlx5_0": {"hcaHandles": 1}}},
                      "linux.resources.rdma: the rdma cgroup controller is not mounted"),
                     ({"unified": {"memory.high": "1"}},
                      "linux.resources.unified: cannot use unified (cgroup v2) resources on cgroup v1")]:
        with pytest.raises(ConchError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            m.apply(parse(res))


def test_v1_update_failure_restores_what_was_written(tmp_path):
    m = v1_fixture(tmp_path)
    os.remove(os.path.join(m.dirs["blkio"], "blkio.throttle.write_iops_device"))
    os.mkdir(os.path.join(m.dirs["blkio"], "blkio.throttle.write_iops_device"))  # refuses writes
    r = resources.parse({"memory": {"limit": 1 << 30}, "pids": {"limit": 9},
                         "blockIO": {"throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 5}]}},
                        prefix="")
    with pytest.raises(ConchError, match=r"^blockIO.throttleWriteIOPSDevice\[0\]: writing"):
        m.apply(r, update=True)
    assert read(m.dirs["memory"], "memory.limit_in_bytes") == "9223372036854771712"
    assert read(m.dirs["pids"], "pids.max") == "max"


def test_v1_memory_and_swap_order(tmp_path):
    """Raising both: swap first (the kernel keeps limit <= memsw); lowering: limit first."""
    m = v1_fixture(tmp_path)
    calls = []
    import conch.cgroups.common as common
    real = common.write

    def spy(path, data):
        calls.append(os.path.basename(path))
        return real(path, data)
    common.write = spy
    try:
        mem = m.dirs["memory"]
        with open(os.path.join(mem, "memory.limit_in_bytes"), "w") as f:
            f.write(str(64 << 20))
        m.apply(parse({"memory": {"limit": 128 << 20, "swap": 256 << 20}}), update=True)
        assert calls == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
        calls.clear()
        m.apply(parse({"memory": {"limit": 32 << 20, "swap": 64 << 20}}), update=True)
        assert calls == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    finally:
        common.write = real


def test_v1_check_before_update(tmp_path):
    m = v1_fixture(tmp_path)
    with open(os.path.join(m.dirs["memory"], "memory.usage_in_bytes"), "w") as f:
        f.write(str(10 << 20))
    r = parse({"memory": {"limit": 5 << 20, "checkBeforeUpdate": True}})
    with pytest.raises(ConchError, match="below the current usage 10485760"):
        m.apply(r, update=True)
    assert read(m.dirs["memory"], "memory.limit_in_bytes") == "9223372036854771712"


def test_v1_paths_relative_absolute_default(monkeypatch):
    import conch.cgroups.v1 as v1
    monkeypatch.setattr(v1, "own_cgroups", lambda: {"memory": "/a/b", "cpu": "/", "": "/u"})
    monkeypatch.setattr(v1, "is_cgroup2", lambda p: True)
    rel = V1Manager.for_path("x/y", "id1").dirs
    assert rel["memory"] == "/sys/fs/cgroup/memory/a/b/x/y" and rel["cpu"] == "/sys/fs/cgroup/cpu/x/y"
    assert rel[""] == "/sys/fs/cgroup/unified/u/x/y"
    absolute = V1Manager.for_path("/abs/c", "id1").dirs
    assert absolute["memory"] == "/sys/fs/cgroup/memory/abs/c"
    assert absolute[""] == "/sys/fs/cgroup/unified/abs/c"
    assert V1Manager.for_path("", "id1").dirs["memory"] == "/sys/fs/cgroup/memory/a/b/id1"


def test_path_escape_is_refused():
    from conch.cgroups import manager_for
    with pytest.raises(ConchError, match="linux.cgroupsPath: must not contain '..'"):
        manager_for("../../x", "id")
    with pytest.raises(ConchError, match="needs --systemd-cgroup"):
        manager_for("system.slice:conch:x", "id")


# --- v2 on fixture directories ------------------------------------------------------------------

def v2_fixture(tmp_path, controllers="cpuset cpu io memory hugetlb pids rdma", bfq=False):
    """root/ (cgroup2 root) / parent / ctr, each with cgroup.controllers and the files."""
    root = tmp_path / "root"
    parent = root / "parent"
    ctr = parent / "ctr"
    ctr.mkdir(parents=True)
    for d in (root, parent, ctr):
        (d / "cgroup.controllers").write_text(controllers)
        (d / "cgroup.subtree_control").write_text("")
    (tmp_path / "not-cgroup").mkdir()
    files = {"memory.max": "max", "memory.swap.max": "max", "memory.low": "0",
             "memory.current": "8192", "cpu.weight": "100", "cpu.max": "max 100000",
             "cpu.max.burst": "0", "cpu.idle": "0", "cpuset.cpus": "", "cpuset.mems": "",
             "pids.max": "max", "io.weight": "default 100", "io.max": "",
             "hugetlb.2MB.max": "max", "hugetlb.2MB.rsvd.max": "max", "rdma.max": "",
             "memory.high": "max"}
    if bfq:
        files["io.bfq.weight"] = "default 100"
    for name, value in files.items():
        (ctr / name).write_text(value)
    return V2Manager({"": str(ctr)})


def test_v2_converts_v1_values(tmp_path):
    m = v2_fixture(tmp_path)
    r = parse({"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 16 << 20,
                          "swappiness": 30, "disableOOMKiller": True},
               "cpu": {"shares": 1024, "quota": 50000, "period": 200000, "burst": 3000, "idle": 1,
                       "cpus": "0-1", "mems": "0"},
               "pids": {"limit": 40},
               "blockIO": {"weight": 500,
                           "weightDevice": [{"major": 8, "minor": 0, "weight": 1000}],
                           "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 100}],
                           "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 7}]},
               "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
               "rdma": {"mlx5_0": {"hcaHandles": 3}}})
    m.apply(r)
    d = m.path
    assert read(d, "memory.max") == str(64 << 20)
    assert read(d, "memory.swap.max") == str(32 << 20)  # v1's memory+swap minus memory
    assert read(d, "memory.low") == str(16 << 20)
    assert read(d, "cpu.weight") == "39"
    assert read(d, "cpu.max") == "50000 200000"
    assert read(d, "cpu.max.burst") == "3000" and read(d, "cpu.idle") == "1"
    assert read(d, "cpuset.cpus") == "0-1" and read(d, "pids.max") == "40"
    assert read(d, "io.weight") == "8:0 10000"  # the last write (the kernel keeps both lines)
    assert read(d, "io.max") == "8:0 rbps=100 wiops=7"
    assert read(d, "hugetlb.2MB.max") == str(4 << 20) == read(d, "hugetlb.2MB.rsvd.max")
    assert read(d, "rdma.max") == "mlx5_0 hca_handle=3 hca_object=max"
    # swappiness and disableOOMKiller have no v2 file: ignored, as by runc
    root = os.path.dirname(os.path.dirname(d))
    assert read(root, "cgroup.subtree_control") == "+rdma"  # one write per controller
    assert read(os.path.join(root, "parent"), "cgroup.subtree_control") == "+rdma"


def test_v2_enables_only_missing_controllers_from_the_root_down(tmp_path):
    m = v2_fixture(tmp_path)
    calls = []
    import conch.cgroups.v2 as v2
    real = v2.write

    def spy(path, data):
        calls.append((os.path.relpath(path, str(tmp_path)), data))
        return real(path, data)
    v2.write = spy
    try:
        (tmp_path / "root" / "cgroup.subtree_control").write_text("memory pids")
        m.enable({"memory": "m", "pids": "p", "cpu": "c"})
    finally:
        v2.write = real
    assert calls == [("root/cgroup.subtree_control", "+cpu"),
                     ("root/parent/cgroup.subtree_control", "+cpu"),
                     ("root/parent/cgroup.subtree_control", "+memory"),
                     ("root/parent/cgroup.subtree_control", "+pids")]


def test_v2_bfq_weight_takes_the_v1_value(tmp_path):
    m = v2_fixture(tmp_path, bfq=True)
    m.apply(parse({"blockIO": {"weight": 500}}))
    assert read(m.path, "io.bfq.weight") == "500" and read(m.path, "io.weight") == "default 100"


def test_v2_unified_keys(tmp_path):
    m = v2_fixture(tmp_path, controllers="cpu memory pids")
    m.apply(parse({"memory": {"limit": 1 << 20}, "unified": {"memory.max": "2097152",
                                                             "memory.high": "1048576"}}))
    assert read(m.path, "memory.max") == "2097152"  # unified is written last: it wins
    assert read(m.path, "memory.high") == "1048576"
    with pytest.raises(ConchError, match="linux.resources.unified.io.latency: the io controller "
                                         "is not available"):
        m.apply(parse({"unified": {"io.latency": "8:0 target=10"}}))
    with pytest.raises(ConchError, match="linux.resources.unified.memory.nosuch: no such cgroup file"):
        m.apply(parse({"unified": {"memory.nosuch": "1"}}))


@pytest.mark.parametrize("res,msg", [
    ({"cpu": {"realtimeRuntime": 1000}}, "linux.resources.cpu.realtimeRuntime: realtime CPU limits are not supported on cgroup v2"),
    ({"network": {"classID": 1}}, "linux.resources.network: net_cls and net_prio do not exist on cgroup v2"),
    ({"blockIO": {"leafWeight": 100}}, "linux.resources.blockIO.leafWeight: there is no leaf weight"),
    ({"memory": {"swap": 100}}, "linux.resources.memory.swap: a swap limit needs a memory limit"),
    ({"cpu": {"shares": 2}, "pids": {"limit": 3}, "unified": {"cpu.weight": "x/y"}}, None),
])
def test_v2_refusals(tmp_path, res, msg):
    m = v2_fixture(tmp_path)
    if msg is None:  # a kernel refusal in the middle of an update: the rest is undone
        os.remove(os.path.join(m.path, "pids.max"))
        os.mkdir(os.path.join(m.path, "pids.max"))
        with pytest.raises(ConchError, match="pids.limit"):
            m.apply(resources.parse(res, prefix=""), update=True)
        assert read(m.path, "cpu.weight") == "100"
        return
    with pytest.raises(ConchError, match=msg):
        m.apply(parse(res))


def test_v2_check_before_update(tmp_path):
    m = v2_fixture(tmp_path)
    r = parse({"memory": {"limit": 4096, "checkBeforeUpdate": True}})
    with pytest.raises(ConchError, match="4096 is below the current usage 8192"):
        m.apply(r, update=True)
    m.apply(parse({"memory": {"limit": 16384, "checkBeforeUpdate": True}}), update=True)
    assert read(m.path, "memory.max") == "16384"


def test_v2_stats_from_files(tmp_path):
    m = v2_fixture(tmp_path)
    d = m.path
    files = {"cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\n"
                         "nr_throttled 1\nthrottled_usec 20\n",
             "memory.stat": "anon 4096\nfile 8192\n", "memory.current": "12288",
             "memory.max": "max", "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
             "memory.swap.current": "0", "memory.swap.max": "max",
             "pids.current": "2", "pids.max": "max",
             "io.stat": "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
             "cpuset.cpus.effective": "0-1", "cpuset.mems.effective": "0",
             "hugetlb.2MB.current": "0", "hugetlb.2MB.events": "max 0\n"}
    for name, value in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(value)
    s = v2_stats(d)
    assert s["cpu"] == {"usage": {"total": 1500000, "kernel": 500000, "user": 1000000},
                        "throttling": {"periods": 4, "throttledPeriods": 1, "throttledTime": 20000}}
    assert s["memory"]["cache"] == 8192
    assert s["memory"]["usage"] == {"limit": (1 << 64) - 1, "usage": 12288, "failcnt": 3}
    assert s["memory"]["swap"] == {"limit": (1 << 64) - 1, "usage": 12288, "failcnt": 0}
    assert s["memory"]["raw"] == {"anon": 4096, "file": 8192}
    assert s["pids"] == {"current": 2}
    assert s["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "op": "Read", "value": 4096}, {"major": 8, "op": "Write"}]
    assert s["cpuset"]["cpus"] == [0, 1] and s["hugetlb"] == {"2MB": {"failcnt": 0}}
    assert list(s) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                       "network_interfaces"]


def test_v2_oom_watch_counts_kills(tmp_path):
    from conch.cgroups.stats import OOMWatchV2
    m = v2_fixture(tmp_path)
    ev = os.path.join(m.path, "memory.events")
    with open(ev, "w") as f:
        f.write("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
    w = OOMWatchV2(m.path)
    try:
        assert w.events() == 0
        with open(ev, "w") as f:
            f.write("low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\n")
        assert w.events() == 2 and w.events() == 0
    finally:
        w.close()


# --- the device program --------------------------------------------------------------------------

def verdict(rules, typ, major, minor, access):
    allow_all, entries = effective_device_rules(rules)
    return bpf.run(bpf.compile_rules(allow_all, entries), typ, major, minor, access)


DEFAULT = [(False, "a", -1, -1, "rwm")] + list(DEFAULT_DEVICE_RULES)


@pytest.mark.parametrize("req,ok", [
    (("c", 1, 3, "rw"), 1),      # /dev/null
    (("c", 1, 11, "r"), 0),      # /dev/kmsg
    (("b", 8, 0, "r"), 0),       # a disk
    (("b", 8, 0, "m"), 1),       # mknod of anything: b *:* m
    (("c", 136, 5, "rw"), 1),    # a pty: c 136:* rwm
    (("c", 5, 2, "w"), 1),       # ptmx
])
def test_device_program_default_list(req, ok):
    assert verdict(DEFAULT, *req) == ok


def test_device_program_partial_access_and_denies():
    rules = DEFAULT + [(True, "c", 1, 11, "r")]
    assert verdict(rules, "c", 1, 11, "r") == 1
    assert verdict(rules, "c", 1, 11, "rw") == 0  # an allow must cover all of the request
    deny = [(True, "a", -1, -1, "rwm"), (False, "c", 1, 3, "w"), (False, "b", 8, -1, "rwm")]
    assert verdict(deny, "c", 1, 3, "r") == 1
    assert verdict(deny, "c", 1, 3, "rw") == 0    # a deny matches any overlap
    assert verdict(deny, "b", 8, 17, "m") == 0
    assert verdict(deny, "b", 9, 0, "rw") == 1
    assert verdict([(False, "a", -1, -1, "rwm")], "c", 1, 3, "r") == 0


def test_device_program_instructions():
    prog = bpf.compile_rules(False, {("c", 1, 3): "mrw"})
    assert len(prog) % 8 == 0
    insns = [prog[i:i + 8] for i in range(0, len(prog), 8)]
    assert insns[0] == bytes.fromhex("6112000000000000")   # r2 = *(u32 *)(r1 + 0)
    assert insns[-1] == bytes.fromhex("9500000000000000")  # exit
    assert insns[-2] == bytes.fromhex("b700000000000000")  # r0 = 0: deny by default
    assert bytes.fromhex("5604030001000000") in insns      # if w4 != 1 goto +3 (major)


# --- systemd: paths, properties, D-Bus --------------------------------------------------------------

def test_slice_expansion_and_unit_names():
    assert expand_slice("system.slice") == "/system.slice"
    assert expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    assert expand_slice("-.slice") == "/"
    for bad in ("a--b.slice", "-a.slice", "a.scope", "x/y.slice"):
        with pytest.raises(ConchError):
            expand_slice(bad)
    assert parse_path("", "web") == ("system.slice", "conch-web.scope", "/system.slice/conch-web.scope")
    assert parse_path("machine-x.slice:podman:abc", "id") == \
        ("machine-x.slice", "podman-abc.scope", "/machine.slice/machine-x.slice/podman-abc.scope")
    assert parse_path(":pre:n", "id")[2] == "/system.slice/pre-n.scope"
    with pytest.raises(ConchError, match='expected "slice:prefix:name"'):
        parse_path("/abs/path", "id")


def test_unit_properties_carry_the_resources():
    r = parse({"memory": {"limit": 64 << 20}, "cpu": {"shares": 1024, "quota": 33333,
               "period": 100000, "cpus": "0,9"}, "pids": {"limit": -1}, "blockIO": {"weight": 500}})
    v1 = dict(unit_properties(r, DEFAULT, False, 42, "system.slice", "conch container x"))
    assert v1["PIDs"] == Variant("au", [42]) and v1["Delegate"] == Variant("b", True)
    assert v1["Slice"] == Variant("s", "system.slice")
    assert v1["MemoryLimit"] == Variant("t", 64 << 20)
    assert v1["CPUShares"] == Variant("t", 1024)
    assert v1["CPUQuotaPerSecUSec"] == Variant("t", 340000)  # 333330 rounded up to 10 ms steps
    assert v1["TasksMax"] == Variant("t", (1 << 64) - 1)
    assert v1["BlockIOWeight"] == Variant("t", 500)
    assert v1["DevicePolicy"] == Variant("s", "strict")
    assert ("/dev/char/1:3", "rwm") in v1["DeviceAllow"].value
    assert ("char-*", "m") in v1["DeviceAllow"].value
    v2 = dict(properties(r, None, True))
    assert v2["MemoryMax"] == Variant("t", 64 << 20) and v2["CPUWeight"] == Variant("t", 39)
    assert v2["IOWeight"] == Variant("t", 4950)
    assert v2["AllowedCPUs"] == Variant("ay", bytes([0x01, 0x02]))


def test_dbus_hello_bytes():
    """The Hello call, byte by byte as the D-Bus specification lays it out."""
    m = Message(1, 1, {1: "/org/freedesktop/DBus", 2: "org.freedesktop.DBus", 3: "Hello",
                       6: "org.freedesktop.DBus"})
    data = m.encode()
    assert data[:4] == b"l\x01\x00\x01"                    # little endian, call, no flags, v1
    assert data[4:8] == (0).to_bytes(4, "little")          # no body
    assert data[8:12] == (1).to_bytes(4, "little")         # serial
    fields_len = int.from_bytes(data[12:16], "little")
    assert data[16:20] == b"\x01\x01o\x00"                 # field PATH, variant signature "o"
    assert data[20:24] == (21).to_bytes(4, "little") and data[24:46] == b"/org/freedesktop/DBus\0"
    assert len(data) == 16 + fields_len + (-(16 + fields_len) % 8)
    back, used = Message.decode(data)
    assert used == len(data) and back.fields[3] == "Hello" and back.serial == 1


def test_dbus_marshalling_round_trip():
    sig = "ssa(sv)a(sa(sv))"
    body = ["conch-x.scope", "replace",
            [("Description", Variant("s", "x")), ("PIDs", Variant("au", [1, 2])),
             ("Delegate", Variant("b", True)), ("MemoryMax", Variant("t", (1 << 64) - 1)),
             ("AllowedCPUs", Variant("ay", b"\x03")),
             ("DeviceAllow", Variant("a(ss)", [("/dev/null", "rw")]))], []]
    m = Message(1, 7, {1: "/org/freedesktop/systemd1", 3: "StartTransientUnit"}, sig, body)
    back, _ = Message.decode(m.encode())
    assert back.sig == sig and back.body == body
    w = Writer()
    w.put("ya{sv}", [7, {"k": Variant("x", -5)}])
    assert Reader(bytes(w.buf)).get("ya{sv}") == [7, {"k": Variant("x", -5)}]
    assert bytes(w.buf)[:8] == b"\x07\x00\x00\x00" + (24).to_bytes(4, "little")  # array after pad


@pytest.fixture
def dbus_daemon(tmp_path):
    """A private dbus-daemon on a socket of its own (the real bus implementation)."""
    exe = shutil.which("dbus-daemon")
    if not exe:
        pytest.skip("dbus-daemon is not installed")
    sock = tmp_path / "bus"
    conf = tmp_path / "bus.conf"
    conf.write_text(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>custom</type><listen>unix:path={sock}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>
<allow own="*"/><allow user="*"/></policy></busconfig>""")
    p = subprocess.Popen([exe, f"--config-file={conf}", "--nofork", "--nopidfile"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 5
    while not sock.exists():
        assert p.poll() is None, p.stderr.read()
        assert time.monotonic() < deadline, "dbus-daemon did not start"
        time.sleep(0.01)
    yield str(sock)
    p.terminate()
    p.wait(5)


def test_dbus_calls_and_signals_on_a_real_bus(dbus_daemon):
    a = Connection(dbus_daemon, bus=True, timeout=5)
    b = Connection(dbus_daemon, bus=True, timeout=5)
    try:
        assert a.unique_name.startswith(":1.") and a.unique_name != b.unique_name
        names = a.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                       "ListNames")[0]
        assert a.unique_name in names and b.unique_name in names
        assert b.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                      "NameHasOwner", "s", a.unique_name) == [True]
        # a signal with a systemd-shaped body reaches a connection that asked for it
        b.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
               "AddMatch", "s", "type='signal',interface='org.example.T',member='JobRemoved'")
        a.send(Message(4, fields={1: "/org/freedesktop/systemd1", 2: "org.example.T",
                                  3: "JobRemoved"}, sig="uoss",
                       body=[7, "/org/freedesktop/systemd1/job/7", "conch-x.scope", "done"]))
        got = b.wait_signal(lambda m: m.fields.get(3) == "JobRemoved")
        assert got.body == [7, "/org/freedesktop/systemd1/job/7", "conch-x.scope", "done"]
        assert got.fields[7] == a.unique_name  # the bus stamped the sender
        from conch.cgroups.systemd import DBusError
        with pytest.raises(DBusError, match="org.freedesktop.DBus.Error.ServiceUnknown"):
            a.call("org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                   "org.freedesktop.systemd1.Manager", "GetUnit", "s", "x.scope")
    finally:
        a.close()
        b.close()


# --- kill --all: cgroup.kill, or the freeze/signal/thaw loop (fixture files) -----------------

def kill_fixture(tmp_path, kill_file=True, v1=True):
    """A hybrid host's container (v1 freezer and pids, a cgroup2 dir) or a v2 one, with
    cgroup.procs listing pids 101 and 102."""
    dirs = {}
    names = (["freezer", "pids"] if v1 else []) + [""]
    for name in names:
        d = tmp_path / (name or "unified") / "ctr"
        d.mkdir(parents=True)
        (d / "cgroup.procs").write_text("101\n102\n")
        dirs[name] = str(d)
    if v1:
        (tmp_path / "freezer" / "ctr" / "freezer.state").write_text("THAWED")
    if kill_file:
        (tmp_path / "unified" / "ctr" / "cgroup.kill").write_text("")
    return V1Manager(dirs) if v1 else V2Manager(dirs)


@pytest.fixture
def sent(monkeypatch):
    from conch import container
    got = []
    monkeypatch.setattr(container.os, "kill", lambda pid, sig: got.append((pid, sig)))
    return got


def test_kill_file_of_the_cgroup2_directory(tmp_path):
    m = kill_fixture(tmp_path)
    assert m.kill() is True
    assert read(m.dirs[""], "cgroup.kill") == "1"
    assert kill_fixture(tmp_path / "old", kill_file=False).kill() is False  # before 5.14
    assert V1Manager({"pids": str(tmp_path)}).kill() is False  # no cgroup2 directory


@pytest.mark.parametrize("v1", [True, False], ids=["hybrid", "v2"])
def test_sigkill_to_all_goes_through_cgroup_kill(tmp_path, sent, v1):
    from conch.container import signal_all
    m = kill_fixture(tmp_path, v1=v1)
    signal_all(SignalState(m), 9)
    assert read(m.dirs[""], "cgroup.kill") == "1" and sent == []
    if v1:
        assert read(m.dirs["freezer"], "freezer.state") == "THAWED"


def test_sigkill_without_cgroup_kill_signals_each_process(tmp_path, sent):
    from conch.container import signal_all
    m = kill_fixture(tmp_path, kill_file=False)
    signal_all(SignalState(m), 9)
    assert sent == [(101, 9), (102, 9)]
    assert not os.path.exists(os.path.join(m.dirs[""], "cgroup.kill"))
    assert read(m.dirs["freezer"], "freezer.state") == "THAWED"


def test_other_signals_freeze_signal_each_and_thaw(tmp_path, monkeypatch):
    from conch import container
    m = kill_fixture(tmp_path)
    seen = []
    monkeypatch.setattr(container.os, "kill", lambda pid, sig: seen.append(
        (pid, sig, read(m.dirs["freezer"], "freezer.state"))))
    container.signal_all(SignalState(m), 15)
    assert seen == [(101, 15, "FROZEN"), (102, 15, "FROZEN")]  # frozen meanwhile
    assert read(m.dirs["freezer"], "freezer.state") == "THAWED"
    assert read(m.dirs[""], "cgroup.kill") == ""  # only for SIGKILL


def test_other_signals_leave_a_paused_container_paused(tmp_path, sent):
    from conch.container import signal_all
    m = kill_fixture(tmp_path)
    with open(os.path.join(m.dirs["freezer"], "freezer.state"), "w") as f:
        f.write("FROZEN")
    signal_all(SignalState(m, "paused"), 15)
    assert sent == [(101, 15), (102, 15)]
    assert read(m.dirs["freezer"], "freezer.state") == "FROZEN"
