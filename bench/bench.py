#!/usr/bin/python3
"""conch's benchmark: conch against runc and crun, side by side.

Run it through `sh bench/run.sh` (which installs the Debian packages it needs).
All three runtimes run the same busybox bundle, interleaved (conch, runc, crun,
conch, runc, crun, ...) in one session, each with its own --root under one
temporary directory.

crun refuses this VM's hybrid cgroup layout (v1 controllers plus a
controller-less cgroup2 at /sys/fs/cgroup/unified), so the benchmark re-executes
itself under `unshare -m --propagation private` and unmounts
/sys/fs/cgroup/unified there: the unmount is private to the benchmark's mount
namespace (the host keeps its mount) and all three runtimes run the same way.

Every container gets its own id and a relative linux.cgroupsPath
"<parent>/<runtime>/<id>", where <parent> ("conch-bench-<token>") is unique to the
session. Whatever is left at the end (containers, processes in those cgroups,
cgroup directories named <parent>, the temporary directory) is removed, also
when interrupted, and the report says what each runtime left behind.

Workloads (n = iterations per runtime):
  1. run /bin/true in the foreground
  2. create + start + delete --force of a `sleep 10` container
  3. exec /bin/true into a running container (n/a for a runtime without exec)
  4. state <id> and list, with C containers created
  5. peak RSS (/usr/bin/time -f %M) of run /bin/true
  6. B containers run back to back (wall time), and by 2 workers concurrently
"""

import argparse
import datetime
import json
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIMES = ("conch", "runc", "crun")
COLORS = {"conch": "#d95f02", "runc": "#1b9e77", "crun": "#7570b3"}
CGROUP_ROOT = "/sys/fs/cgroup"
UNIFIED = "/sys/fs/cgroup/unified"
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
TIMEOUT = 60.0  # seconds, per runtime invocation

# key, title, unit, target: (max ratio to runc, stretch max ratio to crun)
WORKLOADS = [
    ("run", "1. run /bin/true (foreground)", "ms", (1.0, 1.5)),
    ("lifecycle", "2. create + start + delete --force", "ms", (1.0, 1.5)),
    ("exec", "3. exec /bin/true into a running container", "ms", (1.0, 1.5)),
    ("state", "4a. state <id>, {C} containers present", "ms", (1.5, None)),
    ("list", "4b. list, {C} containers present", "ms", (1.5, None)),
    ("rss", "5. peak RSS of run /bin/true", "MiB", (1.0, None)),
    ("seq", "6a. {B} x run /bin/true, back to back", "s", None),
    ("par", "6b. {B} x run /bin/true, 2 workers", "s", None),
]
# extra samples shown in the breakdown table
EXTRA = [
    ("lc_create", "2. create (of create + start + delete)", "ms"),
    ("lc_start", "2. start", "ms"),
    ("lc_delete", "2. delete --force (running sleep 10)", "ms"),
    ("mk100", "4. create, while filling up to {C} containers", "ms"),
    ("rm100", "4. delete --force of a created container, {C} present", "ms"),
    ("version", "--version (process start floor)", "ms"),
    ("pyfloor", "python3 -I -S -X utf8, start and _exit (conch's interpreter alone; measured in 4's rounds)", "ms"),
]


# ---------------------------------------------------------------- utilities

def pct(xs, p):
    """The p-th percentile of xs, linear interpolation between closest ranks."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100.0
    f = int(k)
    c = min(f + 1, len(s) - 1)
    return s[f] + (s[c] - s[f]) * (k - f)


def summary(xs):
    return {"n": len(xs), "median": pct(xs, 50), "p10": pct(xs, 10), "p90": pct(xs, 90),
            "q1": pct(xs, 25), "q3": pct(xs, 75), "min": min(xs), "max": max(xs)}


def fmt(v, unit):
    if v != v:
        return "-"
    if unit == "s":
        return f"{v:.2f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def sh(argv, **kw):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=ENV, **kw).stdout


def first_line(argv):
    try:
        return sh(argv).strip().splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError) as e:
        return f"unknown ({e})"


class Interrupted(Exception):
    pass


def _on_signal(signum, _frame):
    print(f"bench: got signal {signum}: stopping and cleaning up", flush=True)
    raise Interrupted(f"signal {signum}")


# ---------------------------------------------------------------- the runner

class Caller:
    """Spawns one runtime command and times it: posix_spawn, stdio on /dev/null
    (stderr to a private file, kept for the report when the command fails)."""

    def __init__(self, tmp, name):
        self.devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        self.errpath = os.path.join(tmp, f"stderr.{name}")
        self.errfd = os.open(self.errpath, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)

    def close(self):
        os.close(self.devnull)
        os.close(self.errfd)

    def __call__(self, argv, stdout=None):
        """Run argv; return (milliseconds, exit code, stderr text or None)."""
        os.ftruncate(self.errfd, 0)
        os.lseek(self.errfd, 0, os.SEEK_SET)
        out = self.devnull if stdout is None else stdout
        fa = [(os.POSIX_SPAWN_DUP2, self.devnull, 0), (os.POSIX_SPAWN_DUP2, out, 1),
              (os.POSIX_SPAWN_DUP2, self.errfd, 2)]
        t0 = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], argv, ENV, file_actions=fa, setsigmask=(),
                             setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT,
                                        signal.SIGTERM, signal.SIGHUP))
        pfd = os.pidfd_open(pid)
        try:
            p = select.poll()
            p.register(pfd, select.POLLIN)
            if not p.poll(TIMEOUT * 1000):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return (time.perf_counter_ns() - t0) / 1e6, -999, f"timed out after {TIMEOUT:.0f} s"
            _, status = os.waitpid(pid, 0)
            t1 = time.perf_counter_ns()
        finally:
            os.close(pfd)
        rc = os.waitstatus_to_exitcode(status)
        err = None
        if rc != 0:
            err = os.pread(self.errfd, 4000, 0).decode(errors="replace").strip()
        return (t1 - t0) / 1e6, rc, err


class Runtime:
    def __init__(self, name, binary, root):
        self.name, self.binary, self.root = name, binary, root
        os.makedirs(root, 0o700)

    def argv(self, *args):
        return [self.binary, "--root", self.root, *args]


class Bench:
    def __init__(self, opts, tmp, token):
        self.o = opts
        self.tmp = tmp
        self.token = token
        self.cgparent = f"conch-bench-{token}"
        self.samples = {}      # key -> runtime -> [values]
        self.na = {}           # key -> runtime -> reason
        self.failures = []     # dicts
        self.failcount = {}    # (key, runtime) -> count
        self.leftovers = []    # what the runtimes left behind, found at cleanup
        self.bundles = os.path.join(tmp, "bundles")
        os.mkdir(self.bundles)
        self.call = Caller(tmp, "main")
        self.rts = []
        self.stop = threading.Event()

    # ---- setup

    def setup(self):
        prefix = os.path.join(self.tmp, "prefix")
        if self.o.conch:
            bins = {"conch": os.path.abspath(self.o.conch)}
        else:
            print("bench: installing conch into the temp dir (tools/install.sh)", flush=True)
            sh(["sh", os.path.join(REPO, "tools", "install.sh"), prefix])
            bins = {"conch": os.path.join(prefix, "bin", "conch")}
        for name in ("runc", "crun"):
            path = shutil.which(name, path=ENV["PATH"])
            if not path:
                raise SystemExit(f"bench: {name} not found (sh bench/run.sh installs it)")
            bins[name] = path
        self.rts = [Runtime(n, bins[n], os.path.join(self.tmp, "root-" + n)) for n in RUNTIMES]
        self.rootfs = os.path.join(self.tmp, "rootfs")
        sh(["sh", os.path.join(REPO, "tools", "mkrootfs.sh"), self.rootfs])
        tdir = os.path.join(self.tmp, "template")
        os.mkdir(tdir)
        # runc's default config.json (`conch spec` writes the same one, but with
        # ociVersion 1.2.0, which crun 1.8.1 rejects: "unknown version specified")
        sh([bins["runc"], "spec"], cwd=tdir)
        with open(os.path.join(tdir, "config.json")) as f:
            cfg = json.load(f)
        cfg["process"]["terminal"] = False
        cfg["root"] = {"path": self.rootfs, "readonly": True}
        cfg["linux"]["cgroupsPath"] = "@CGPATH@"
        self.template = cfg
        self.spec_note = (f"`runc spec` (ociVersion {cfg.get('ociVersion')}), "
                          "process.terminal=false, root.readonly=true, "
                          "linux.cgroupsPath=\"conch-bench-<token>/<runtime>/<id>\"")
        self.versions = {
            "conch": first_line([bins["conch"], "--version"]),
            "runc": first_line([bins["runc"], "--version"]),
            "crun": first_line([bins["crun"], "--version"]),
        }
        try:
            with open(os.path.join(prefix, "lib", "conch", "conch", "COMMIT")) as f:
                commit = f.read().strip()
        except OSError:
            commit = "unknown" if not self.o.conch else f"of {self.o.conch}"
        try:
            dirty = subprocess.run(
                ["git", "-C", REPO, "--no-optional-locks", "status", "--porcelain", "--", "conch"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.strip()
        except OSError:
            dirty = ""
        self.commit = commit + (" (with uncommitted changes in conch/)" if dirty else "")

    def bundle(self, cid, args):
        d = os.path.join(self.bundles, cid)
        os.mkdir(d)
        cfg = dict(self.template)
        cfg["process"] = dict(self.template["process"], args=list(args))
        rtname = cid.split("-", 1)[0]  # every id starts with its runtime's name
        cfg["linux"] = dict(self.template["linux"],
                            cgroupsPath=f"{self.cgparent}/{rtname}/{cid}")
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        return d

    def drop_bundle(self, cid):
        shutil.rmtree(os.path.join(self.bundles, cid), ignore_errors=True)

    # ---- sampling helpers

    def add(self, key, rt, value):
        self.samples.setdefault(key, {}).setdefault(rt.name, []).append(value)

    def failed(self, key, rt, argv, rc, err):
        """Record a failure; True if this runtime should stop in this workload."""
        n = self.failcount.get((key, rt.name), 0) + 1
        self.failcount[(key, rt.name)] = n
        cmd = " ".join(a.replace(self.tmp, "$TMP") for a in argv)
        self.failures.append({"workload": key, "runtime": rt.name, "cmd": cmd, "rc": rc,
                              "stderr": (err or "").replace(self.tmp, "$TMP")})
        print(f"bench: FAILED [{key}] {cmd}: rc={rc}: {(err or '').strip()[:300]}", flush=True)
        return n >= 3

    def alive(self, key, rt):
        return self.failcount.get((key, rt.name), 0) < 3 and rt.name not in self.na.get(key, {})

    def check(self):
        if self.stop.is_set():
            raise Interrupted("stopped")

    def sweep(self, rt, call=None):
        """delete --force whatever is left in rt's state root (untimed)."""
        call = call or self.call
        try:
            ids = sorted(e for e in os.listdir(rt.root) if os.path.isdir(os.path.join(rt.root, e)))
        except OSError:
            ids = []
        for cid in ids:
            call(rt.argv("delete", "--force", cid))
            self.drop_bundle(cid)
        return ids

    def progress(self, msg):
        print(f"bench: {msg}", flush=True)

    # ---- workloads

    def w_version(self):
        self.progress("reference: --version (process start floor)")
        rts = self.rts
        for i in range(self.o.warmup + self.o.n):
            for rt in rts:
                ms, rc, err = self.call([rt.binary, "--version"])
                if i >= self.o.warmup and rc == 0:
                    self.add("version", rt, ms)
            self.check()

    def w_run(self):
        self.progress(f"1. run /bin/true: {self.o.warmup} warm-up + {self.o.n} per runtime")
        for i in range(self.o.warmup + self.o.n):
            for rt in self.rts:
                if not self.alive("run", rt):
                    continue
                cid = f"{rt.name}-run-{i}"
                b = self.bundle(cid, ["/bin/true"])
                argv = rt.argv("run", "--bundle", b, cid)
                ms, rc, err = self.call(argv)
                if rc != 0:
                    self.failed("run", rt, argv, rc, err)
                    self.call(rt.argv("delete", "--force", cid))
                elif i >= self.o.warmup:
                    self.add("run", rt, ms)
                self.drop_bundle(cid)
            self.check()

    def w_lifecycle(self):
        self.progress(f"2. create + start + delete --force: {self.o.warmup} warm-up + {self.o.n}")
        for i in range(self.o.warmup + self.o.n):
            for rt in self.rts:
                if not self.alive("lifecycle", rt):
                    continue
                cid = f"{rt.name}-lc-{i}"
                b = self.bundle(cid, ["sleep", "10"])
                steps = []
                ok = True
                for argv in (rt.argv("create", "--bundle", b, cid), rt.argv("start", cid),
                             rt.argv("delete", "--force", cid)):
                    ms, rc, err = self.call(argv)
                    if rc != 0:
                        self.failed("lifecycle", rt, argv, rc, err)
                        self.call(rt.argv("delete", "--force", cid))
                        ok = False
                        break
                    steps.append(ms)
                if ok and i >= self.o.warmup:
                    self.add("lifecycle", rt, sum(steps))
                    self.add("lc_create", rt, steps[0])
                    self.add("lc_start", rt, steps[1])
                    self.add("lc_delete", rt, steps[2])
                self.drop_bundle(cid)
            self.check()

    def w_exec(self):
        self.progress(f"3. exec /bin/true into a running container: {self.o.warmup} + {self.o.n}")
        running = []
        for rt in self.rts:
            ms, rc, err = self.call(rt.argv("exec", "--help"))
            if rc != 0:
                first = (err or "").strip().splitlines()
                msg = first[0] if first else ""
                if 'msg="' in msg:  # a logrus line: keep the message only
                    msg = msg.split('msg="', 1)[1].rsplit('"', 1)[0]
                self.na.setdefault("exec", {})[rt.name] = (
                    f"`{rt.name} exec --help` exits {rc}" + (f": {msg[:160]}" if msg else ""))
                self.progress(f"   {rt.name}: n/a ({self.na['exec'][rt.name]})")
                continue
            cid = f"{rt.name}-exec"
            b = self.bundle(cid, ["sleep", "3600"])
            for argv in (rt.argv("create", "--bundle", b, cid), rt.argv("start", cid)):
                ms, rc, err = self.call(argv)
                if rc != 0:
                    self.failed("exec", rt, argv, rc, err)
                    self.na.setdefault("exec", {})[rt.name] = f"could not start the container: {err}"
                    break
            else:
                running.append((rt, cid))
        try:
            for i in range(self.o.warmup + self.o.n):
                for rt, cid in running:
                    if not self.alive("exec", rt):
                        continue
                    argv = rt.argv("exec", cid, "/bin/true")
                    ms, rc, err = self.call(argv)
                    if rc != 0:
                        self.failed("exec", rt, argv, rc, err)
                    elif i >= self.o.warmup:
                        self.add("exec", rt, ms)
                self.check()
        finally:
            for rt in self.rts:
                self.sweep(rt)

    def w_statelist(self):
        C = self.o.containers
        self.progress(f"4. state/list with {C} containers: creating {C} per runtime")
        ids = {rt.name: [] for rt in self.rts}
        try:
            for i in range(C):
                for rt in self.rts:
                    if not self.alive("mk100", rt):
                        continue
                    cid = f"{rt.name}-sl-{i:03d}"
                    b = self.bundle(cid, ["sleep", "3600"])
                    argv = rt.argv("create", "--bundle", b, cid)
                    ms, rc, err = self.call(argv)
                    if rc != 0:
                        self.failed("mk100", rt, argv, rc, err)
                        self.call(rt.argv("delete", "--force", cid))
                        self.drop_bundle(cid)
                    else:
                        ids[rt.name].append(cid)
                        self.add("mk100", rt, ms)
                self.check()
            for rt in self.rts:
                if len(ids[rt.name]) < C:
                    for k in ("state", "list"):
                        self.na.setdefault(k, {})[rt.name] = (
                            f"only {len(ids[rt.name])} of {C} containers could be created")
            self.progress(f"   state/list: {self.o.warmup} warm-up + {self.o.n} per runtime")
            for i in range(self.o.warmup + self.o.n):
                for key in ("state", "list"):
                    for rt in self.rts:
                        if not self.alive(key, rt):
                            continue
                        argv = (rt.argv("state", ids[rt.name][len(ids[rt.name]) // 2])
                                if key == "state" else rt.argv("list"))
                        ms, rc, err = self.call(argv)
                        if rc != 0:
                            self.failed(key, rt, argv, rc, err)
                        elif i >= self.o.warmup:
                            self.add(key, rt, ms)
                # the floor under conch's `state`, in the same rounds: the interpreter
                # started as the launcher starts it, leaving as conch leaves (no teardown)
                ms, rc, err = self.call(["/usr/bin/python3", "-I", "-S", "-X", "utf8", "-c",
                                         "import posix; posix._exit(0)"])
                if i >= self.o.warmup and rc == 0:
                    self.samples.setdefault("pyfloor", {}).setdefault("conch", []).append(ms)
                self.check()
            self.progress(f"   deleting the {C} containers of each runtime")
            for i in range(C):
                for rt in self.rts:
                    if i >= len(ids[rt.name]):
                        continue
                    cid = ids[rt.name][i]
                    argv = rt.argv("delete", "--force", cid)
                    ms, rc, err = self.call(argv)
                    if rc != 0:
                        self.failed("rm100", rt, argv, rc, err)
                    else:
                        self.add("rm100", rt, ms)
                    self.drop_bundle(cid)
                self.check()
        finally:
            for rt in self.rts:
                self.sweep(rt)

    def w_rss(self):
        self.progress(f"5. peak RSS of run /bin/true: {self.o.n} per runtime")
        out = os.path.join(self.tmp, "time.out")
        timebin = "/usr/bin/time"
        for i in range(1 + self.o.n):
            for rt in self.rts:
                if not self.alive("rss", rt):
                    continue
                cid = f"{rt.name}-rss-{i}"
                b = self.bundle(cid, ["/bin/true"])
                argv = [timebin, "-f", "%M", "-o", out] + rt.argv("run", "--bundle", b, cid)
                ms, rc, err = self.call(argv)
                if rc != 0:
                    self.failed("rss", rt, argv, rc, err)
                    self.call(rt.argv("delete", "--force", cid))
                elif i >= 1:
                    with open(out) as f:
                        kb = int(f.read().split()[-1])
                    self.add("rss", rt, kb / 1024.0)
                self.drop_bundle(cid)
            self.check()

    def _batch(self, rt, tag, count, workers):
        """Run `count` containers of /bin/true with `workers` threads; wall seconds."""
        cids = [f"{rt.name}-{tag}-{i:03d}" for i in range(count)]
        for cid in cids:
            self.bundle(cid, ["/bin/true"])
        errors = []

        def worker(chunk, call):
            for cid in chunk:
                if self.stop.is_set():
                    return
                argv = rt.argv("run", "--bundle", os.path.join(self.bundles, cid), cid)
                ms, rc, err = call(argv)
                if rc != 0:
                    errors.append((argv, rc, err))

        callers = [Caller(self.tmp, f"w{k}") for k in range(workers)]
        try:
            chunks = [cids[k::workers] for k in range(workers)]
            t0 = time.perf_counter()
            if workers == 1:
                worker(chunks[0], callers[0])
            else:
                ts = [threading.Thread(target=worker, args=(chunks[k], callers[k]), daemon=True)
                      for k in range(workers)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
            wall = time.perf_counter() - t0
        finally:
            for c in callers:
                c.close()
        for argv, rc, err in errors:
            self.failed("seq" if workers == 1 else "par", rt, argv, rc, err)
        self.sweep(rt)
        for cid in cids:
            self.drop_bundle(cid)
        self.check()
        return None if errors else wall

    def w_batch(self):
        B, R = self.o.batch, self.o.rounds
        self.progress(f"6. {B} containers back to back and with 2 workers: {R} rounds")
        for rt in self.rts:  # a short warm-up
            self._batch(rt, "warm", min(B, 5), 1)
        for r in range(R):
            for key, workers in (("seq", 1), ("par", 2)):
                for rt in self.rts:
                    if not self.alive(key, rt):
                        continue
                    wall = self._batch(rt, f"{key}{r}", B, workers)
                    if wall is not None:
                        self.add(key, rt, wall)
                    self.progress(f"   round {r + 1}/{R} {key} {rt.name}: "
                                  + (f"{wall:.2f} s" if wall is not None else "failed"))

    def run_all(self):
        for name, w in (("--version", self.w_version), ("1. run", self.w_run),
                        ("2. create + start + delete", self.w_lifecycle), ("3. exec", self.w_exec),
                        ("4. state/list", self.w_statelist), ("5. peak RSS", self.w_rss),
                        ("6. batches", self.w_batch)):
            w()
            for rt in self.rts:  # nothing should be left; if something is, say so
                left = self.sweep(rt)
                if left:
                    self.leftovers.append(f"{rt.name}: {len(left)} container(s) left in its "
                                          f"--root after workload {name}, deleted with --force")

    # ---- cleanup

    def _our_cgroup_dirs(self):
        """Every directory named self.cgparent under /sys/fs/cgroup (all hierarchies,
        and the plain tmpfs directory under the unmounted unified mount point)."""
        found = []
        for top, dirs, _files in os.walk(CGROUP_ROOT):
            if top.count("/") > 12:
                dirs[:] = []
                continue
            if self.cgparent in dirs:
                found.append(os.path.join(top, self.cgparent))
                dirs.remove(self.cgparent)
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(top, d))]
        return found

    def _our_pids(self):
        pids = []
        needle = f"/{self.cgparent}/"
        for e in os.listdir("/proc"):
            if not e.isdigit():
                continue
            try:
                with open(f"/proc/{e}/cgroup") as f:
                    if needle in f.read():
                        pids.append(int(e))
            except OSError:
                pass
        return pids

    def cleanup(self):
        """Remove everything this session made; returns a list of problems left."""
        for rt in self.rts:
            left = self.sweep(rt)
            if left:
                self.leftovers.append(f"{rt.name}: {len(left)} container(s) still in its --root "
                                      "at the end, deleted with delete --force")
        pids = self._our_pids()
        if pids:
            self.leftovers.append(f"{len(pids)} process(es) still in the benchmark's cgroups: killed")
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.2)
        # what each runtime left under <parent>/<runtime>/ in each hierarchy, then remove it
        root_dev = os.stat(CGROUP_ROOT).st_dev
        groups = {}
        for d in self._our_cgroup_dirs():
            where = os.path.relpath(os.path.dirname(d), CGROUP_ROOT)
            # not a cgroup when on the /sys/fs/cgroup tmpfs itself: the unified mount
            # point, unmounted in this namespace (and hidden under the cgroup2 on the host)
            tmpfs = os.stat(d).st_dev == root_dev
            for child in sorted(os.listdir(d)):
                if not os.path.isdir(os.path.join(d, child)):
                    continue
                leaves = sum(len(ds) for _t, ds, _f in os.walk(os.path.join(d, child)))
                if leaves:
                    what = (f"{leaves} container directories (plain tmpfs, not cgroups) and "
                            "their parent" if tmpfs else f"{leaves} container cgroups and their parent")
                else:
                    what = "the empty parent " + ("directory" if tmpfs else "cgroup")
                groups.setdefault((child, what), []).append(where + ("" if not tmpfs else
                                                                      " (tmpfs, not a cgroup)"))
            subdirs = [os.path.join(t, x) for t, ds, _ in os.walk(d) for x in ds]
            if tmpfs:
                shutil.rmtree(d, ignore_errors=True)
                continue
            for sub in sorted(subdirs, key=lambda p: -p.count("/")) + [d]:
                for _ in range(50):
                    try:
                        os.rmdir(sub)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.05)
        for (rtname, what), wheres in sorted(groups.items()):
            self.leftovers.append(f"{rtname}: {what} `{self.cgparent}/{rtname}` in "
                                  + ", ".join(wheres))
        problems = []
        for d in self._our_cgroup_dirs():
            problems.append(f"cgroup directory not removed: {d}")
        for pid in self._our_pids():
            problems.append(f"process still running: {pid}")
        return problems


# ---------------------------------------------------------------- machine

def cpu_snapshot():
    """(busy CPU seconds of the whole machine, CPU seconds of this process and the
    children it reaped, wall seconds)."""
    import resource
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = (sum(v[:8]) - v[3] - v[4]) / tick  # all but idle and iowait
    own = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        own += r.ru_utime + r.ru_stime
    return busy, own, time.monotonic()


def other_cpu(a, b):
    """Share of the machine's CPU capacity used by anything but the benchmark's own
    processes between snapshots a and b (other work, kernel threads, steal)."""
    busy, own, wall = (y - x for x, y in zip(a, b))
    return max(0.0, busy - own) / (wall * (os.cpu_count() or 1))


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    except OSError:
        return "?"


def machine_info():
    info = {"kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cores"] = os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        info["memory"] = f"{kb / 1048576:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    info["python"] = first_line(["/usr/bin/python3", "--version"])
    try:
        with open("/etc/debian_version") as f:
            info["os"] = "Debian " + f.read().strip()
    except OSError:
        info["os"] = platform.platform()
    return info


# ---------------------------------------------------------------- report

def title_of(key, opts):
    for k, t, u, _ in WORKLOADS:
        if k == key:
            return t.format(C=opts.containers, B=opts.batch), u
    for k, t, u in EXTRA:
        if k == key:
            return t.format(C=opts.containers, B=opts.batch), u
    return key, ""


def cell(res, key, rt):
    s = res["stats"].get(key, {}).get(rt)
    if s is None:
        return "n/a" if rt in res["na"].get(key, {}) else "-"
    unit = title_of(key, res["opts_ns"])[1]
    return f"{fmt(s['median'], unit)} [{fmt(s['p10'], unit)}–{fmt(s['p90'], unit)}]"


def ratio(res, key, a, b):
    sa = res["stats"].get(key, {}).get(a)
    sb = res["stats"].get(key, {}).get(b)
    if not sa or not sb:
        return None
    return sa["median"] / sb["median"]


def rfmt(r):
    return "n/a" if r is None else f"{r:.2f}×"


def targets(res):
    rows = []
    for key, _t, _u, tgt in WORKLOADS:
        if not tgt:
            continue
        title = title_of(key, res["opts_ns"])[0]
        rr = ratio(res, key, "conch", "runc")
        rc = ratio(res, key, "conch", "crun")
        na = res["na"].get(key, {}).get("conch")
        if key == "rss":
            want = "≤ runc's"
        else:
            want = f"≤ {tgt[0]:.1f}× runc"

        def status(r, limit):
            if r is None:
                if na and key == "exec" and "exec --help" in na:
                    return "n/a (conch has no `exec`)"
                if res["stats"].get(key, {}).get("conch") is None:
                    return "not met (conch failed, see Failures)"
                return "n/a"
            return "**met**" if r <= limit else "not met"
        rows.append((title, want, rfmt(rr), status(rr, tgt[0]),
                     (f"≤ {tgt[1]:.1f}× crun" if tgt[1] else ""),
                     (rfmt(rc) if tgt[1] else ""), (status(rc, tgt[1]) if tgt[1] else "")))
    return rows


def table_rows(res, keys):
    rows = []
    for key in keys:
        if key not in res["stats"] and key not in res["na"]:
            continue
        title, unit = title_of(key, res["opts_ns"])
        rows.append((title, unit, cell(res, key, "conch"), cell(res, key, "runc"),
                     cell(res, key, "crun"), rfmt(ratio(res, key, "conch", "runc")),
                     rfmt(ratio(res, key, "conch", "crun")),
                     str(max((s["n"] for s in res["stats"].get(key, {}).values()), default=0))))
    return rows


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def text_table(header, rows):
    rows = [tuple(header)] + [tuple(r) for r in rows]
    w = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)


HEADER = ("workload", "unit", "conch median [p10–p90]", "runc", "crun",
          "conch/runc", "conch/crun", "n")


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    C, B = res["opts"]["containers"], res["opts"]["batch"]
    limits = {k: t for k, _t, _u, t in WORKLOADS}
    panels = [
        ("Container lifecycle (ms)",
         [("run", "1. run\n/bin/true"), ("lifecycle", "2. create + start\n+ delete --force"),
          ("exec", "3. exec\n/bin/true")], 3.4),
        (f"Queries, {C} containers present (ms)",
         [("state", "4a. state <id>"), ("list", "4b. list")], 2.3),
        (f"{B} containers: total wall time (s)",
         [("seq", "6a. back\nto back"), ("par", "6b. 2 workers\nconcurrently")], 2.3),
        ("Peak RSS (MiB)", [("rss", "5. run\n/bin/true")], 1.3),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 6),
                             gridspec_kw={"width_ratios": [p[2] for p in panels]})
    width = 0.27
    for ax, (ptitle, items, _w) in zip(axes, panels):
        top = 0.0
        for key, _label in items:
            for rt in RUNTIMES:
                s = res["stats"].get(key, {}).get(rt)
                if s:
                    top = max(top, s["p90"])
        for gi, (key, _label) in enumerate(items):
            unit = title_of(key, res["opts_ns"])[1]
            for ri, rt in enumerate(RUNTIMES):
                x = gi + (ri - 1) * width
                s = res["stats"].get(key, {}).get(rt)
                if s is None:
                    why = "n/a" if rt in res["na"].get(key, {}) else "failed"
                    ax.text(x, top * 0.02, f"{rt}: {why}", ha="center", va="bottom", rotation=90,
                            fontsize=9, color=COLORS[rt], fontweight="bold")
                    continue
                m = s["median"]
                ax.bar(x, m, width * 0.95, color=COLORS[rt], label=rt,
                       yerr=[[m - s["p10"]], [s["p90"] - m]], capsize=3,
                       error_kw={"elinewidth": 1, "ecolor": "#333333"})
                ax.text(x, s["p90"] + top * 0.015, fmt(m, unit),
                        ha="center", va="bottom", fontsize=8)
            lim, stretch = limits.get(key) or (None, None)
            r, rc = ratio(res, key, "conch", "runc"), ratio(res, key, "conch", "crun")
            if r is None:
                ax.text(gi, top * 1.1, "conch: n/a", ha="center", fontsize=9, color="#666666")
                continue
            for line, (rr, other, limit) in enumerate(((r, "runc", lim), (rc, "crun", stretch))):
                if rr is None:
                    continue
                if limit is None:
                    color, mark = "#444444", ""
                else:
                    ok = rr <= limit
                    color = "#1a7f37" if ok else "#b42318"
                    mark = f" {'✓' if ok else '✗'}"
                ax.text(gi, top * (1.17 - 0.065 * line), f"vs {other} {rr:.2f}×{mark}",
                        ha="center", va="bottom", fontsize=8.5, color=color,
                        fontweight="bold" if limit is not None else "normal")
        ax.set_xlim(-0.6, len(items) - 0.4)
        ax.set_xticks(range(len(items)))
        ax.set_xticklabels([lab for _, lab in items], fontsize=9)
        ax.set_ylim(0, top * 1.3 if top else 1)
        ax.set_title(ptitle, fontsize=10.5)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    from matplotlib.patches import Patch
    m = res["machine"]
    fig.legend([Patch(color=COLORS[k]) for k in RUNTIMES], list(RUNTIMES),
               loc="lower center", ncol=3, frameon=False, fontsize=10.5)
    rounds = res["opts"]["rounds"]
    fig.suptitle(f"conch vs runc vs crun on one busybox bundle: bars are medians, whiskers "
                 f"p10–p90 (n={res['opts']['n']} per operation, {rounds} round"
                 f"{'s' if rounds != 1 else ''} for 6)\n"
                 f"conch's ratios of medians; ✓/✗ = issue target met or not (1–3: ≤ 1× runc, "
                 f"stretch ≤ 1.5× crun; 4: ≤ 1.5× runc; 5: ≤ runc)\n"
                 f"{m.get('os', '')}, kernel {m['kernel']}, {m['cores']} cores {m.get('cpu', '?')}, "
                 f"runc {res['versions']['runc'].split()[-1]}, crun {res['versions']['crun'].split()[-1]}",
                 x=0.01, ha="left", fontsize=10.5)
    fig.tight_layout(rect=(0, 0.05, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def med(res, key, rt):
    s = res["stats"].get(key, {}).get(rt)
    return s["median"] if s else None


def where_time_goes(res):
    """A paragraph, from this run's medians, on how much of conch's time is the
    interpreter's start."""
    py = med(res, "pyfloor", "conch")
    ver = med(res, "version", "conch")
    st, rst = med(res, "state", "conch"), med(res, "state", "runc")
    run, rrun, crun = med(res, "run", "conch"), med(res, "run", "runc"), med(res, "run", "crun")
    start = med(res, "lc_start", "conch")
    if None in (py, ver, st, rst, run, rrun, crun, start):
        return ""
    out = ["### Where conch's time goes\n"]
    out.append(
        f"Starting conch's interpreter as its launcher does and leaving at once as conch "
        f"leaves (`python3 -I -S -X utf8 -c 'import posix; posix._exit(0)'`, no teardown; "
        f"measured in the rounds of workload 4) takes "
        f"{py:.1f} ms here, and `conch --version` (the interpreter plus conch's command-line "
        f"imports) {ver:.1f} ms, against {med(res, 'version', 'runc'):.1f} ms for runc and "
        f"{med(res, 'version', 'crun'):.1f} ms for crun. Every conch command pays this floor: "
        f"the bare interpreter start is {min(100, 100 * py / st):.0f}% of `conch state` "
        f"({st:.1f} ms) and {min(100, 100 * py / start):.0f}% of `conch start` ({start:.1f} ms). "
        f"Target 4a (at most 1.5× runc's `state`, "
        f"{1.5 * rst:.1f} ms) is {'below' if 1.5 * rst < py else 'only ' + format(1.5 * rst - py, '.1f') + ' ms above'} "
        f"the bare interpreter start. For `run` ({run:.1f} ms against runc's {rrun:.1f} ms and "
        f"crun's {crun:.1f} ms), the part beyond the interpreter's start is {run - py:.1f} ms, "
        f"against crun's whole {crun:.1f} ms.\n")
    out.append(PROFILE_NOTE)
    return "\n".join(out)


PROFILE_NOTE = """\
Instruction counts (`valgrind --tool=callgrind`, deterministic whatever the load) of what a
conch command costs on top of the bare interpreter (`python3 -I -S -c pass`: 20.9M
instructions, of which 5.2M are its teardown; 15.7M if it leaves through `os._exit`):

| piece | instructions | what was done about it |
|---|---|---|
| `import os` | +5.0M (3.0M of it `_collections_abc`, for `os.environ`) | gone: conch imports `conch._os` (posix plus the few helpers it uses), which builds nothing until used: +0.15M |
| `import ctypes` | 5.6 ms by wall clock | gone: `conch/syscalls.py` is a minimal FFI over `_ctypes` with two ctypes types on the start path (each is a metaclass-made class: 0.15M) |
| `json`, `re`, `enum`, `signal`, `socket`, `subprocess` | 2-5 ms each | never imported on a command's path (`_json`, `_signal`, `_socket`, fork/execve); `tests/test_imports.py` keeps it so |
| the first write of a pid to a v1 `cgroup.procs` | 5-18 ms (an RCU grace period) | the single-threaded init moves itself through `tasks`: 0.15 ms |
| importlib, per module | about 0.1M (module lock, finders, spec, `__cached__`, stat, open, read) | the launcher reads `conch.<tag>.bundle` (every module pre-compiled) and conch's own `__import__` loads a module with one pread and one unmarshal |
| the interpreter's teardown | 5.2M | every exit, `--version` and usage errors included, goes through `os._exit` after a flush |
| `_json` (a dlopen) for the state record | 0.4M | the state record is marshalled (`marshal` is built in); JSON is written by conch (as Go writes it) |
| class statements on command paths | 0.06M each (0.15M for ctypes types) | module objects, `SimpleNamespace` and error classes made on first use where no instance is needed |
| the locale-dependent encoding set-up at start | 0.9M | the launcher runs Python in UTF-8 mode (`-X utf8`): conch reads names as UTF-8 with surrogateescape whatever the locale |
| `fcntl`, `resource` (dlopens) and `stat.py` | 0.2-0.3M each | `conch.syscalls` has `fcntl`, `ioctl` and `prlimit`; `_stat` (built in) instead of `stat` |

Before and after this work (callgrind, the conch process, this VM): `--version` 24.2M →
16.6M, `state` 20.8M → 17.6M, `list` 21.0M → 17.8M; `exec` 33.1M → 26.8M and `run` 34.3M →
28.0M up to the container's first `openat2` (valgrind does not implement it, so the rest of
those two cannot be counted). What is left of `state` above the interpreter's own start
(14.8M in UTF-8 mode) is the launcher and its index (0.8M), the command line (0.8M), the
state module and the JSON writer (0.5M) and the work. Next step for every command: fewer,
smaller modules on each path (an unmarshal costs about 15 instructions a byte, and
`conch.cli` alone is 14 KB of code); for `state`, the interpreter's start alone is
1.3-1.4x runc's whole `state` on this VM, which leaves under 1 ms for everything else.
"""


def markdown(res, png_name):
    o = res["opts"]
    m = res["machine"]
    v = res["versions"]
    lines = []
    add = lines.append
    add("# Performance: conch, runc and crun side by side\n")
    add(f"Generated by `sh bench/run.sh{' ' + ' '.join(res['argv']) if res['argv'] else ''}` on "
        f"{res['date']} ({res['duration']:.0f} s). Do not edit by hand: rerun the benchmark.\n")
    add("## Targets\n")
    add("From the performance issue: workloads 1–3 at most 1.0× runc (stretch: at most "
        "1.5× crun), workload 4 at most 1.5× runc, workload 5 (peak RSS) at most runc's. "
        "Ratios are of medians.\n")
    add(md_table(("workload", "target", "conch/runc", "status", "stretch", "conch/crun",
                  "stretch status"), targets(res)))
    add("")
    add("## Results\n")
    add(f"![conch vs runc vs crun: medians with p10–p90 whiskers]({png_name})\n")
    add("Median and, in brackets, the 10th–90th percentile of the samples; ratios are of "
        "medians (below 1 means conch is faster or smaller).\n")
    add(md_table(HEADER, table_rows(res, [w[0] for w in WORKLOADS])))
    add("")
    na = [(k, rt, why) for k, d in res["na"].items() for rt, why in d.items()]
    for k, rt, why in na:
        add(f"- {title_of(k, res['opts_ns'])[0]}: {rt} n/a — {why}.")
    if na:
        add("")
    rdel, lc = med(res, "lc_delete", "runc"), med(res, "lifecycle", "runc")
    clc = med(res, "lifecycle", "conch")
    if rdel is not None and rdel >= 100 and lc and clc:
        add(f"runc's `delete --force` of a running container (and its `delete` of a created "
            f"one) takes {rdel:.0f} ms because it sleeps 100 ms after its SIGKILL before it "
            "first checks that the container is gone (`killContainer` in runc's delete.go); "
            "that sleep is most of runc's time in workload 2. Without it, conch/runc for "
            f"workload 2 would be about {clc / (lc - 100):.2f}×.\n")
    add("### Breakdown and reference points\n")
    add(md_table(HEADER, table_rows(res, [e[0] for e in EXTRA])))
    add("")
    add("`--version` is the cost of starting the runtime's process and doing nothing: for "
        "conch the Python interpreter (`python3 -I -S -X utf8`) and its imports, for runc the Go "
        "runtime, for crun a C binary.\n")
    add(where_time_goes(res))
    add("## Machine\n")
    add(f"- OS: {m.get('os', '?')}, kernel {m['kernel']}")
    add(f"- CPU: {m.get('cpu', '?')}, {m['cores']} cores; memory {m.get('memory', '?')}")
    add(f"- Python (conch's interpreter, /usr/bin/python3): {m['python']}")
    add(f"- conch: {v['conch']}, commit {res['commit']}, run through its launcher "
        + (f"(`{res['opts']['conch']}`)" if res["opts"].get("conch") else
           "(`tools/install.sh` into a temp prefix: `python3 -I -S`, its modules from the pre-compiled bundle)"))
    add(f"- runc: {v['runc']}")
    add(f"- crun: {v['crun']}")
    add(f"- cgroups: {res['cgroups']}")
    add(f"- Other load during the run: {100 * res['other_cpu']:.0f}% of the machine's CPU "
        "capacity was used by processes other than the benchmark's own (and by kernel threads); "
        f"1-minute load average {res['load'][0]} at the start, {res['load'][1]} at the end. "
        "Other work adds noise, which the interleaving spreads over the three runtimes alike.\n")
    add("## Method\n")
    add(f"- One bundle for all three runtimes: a busybox rootfs from `tools/mkrootfs.sh` and "
        f"{res['spec_note']}; every container gets its own id and its own `config.json` "
        "(same rootfs, differing only in `process.args` and `cgroupsPath`), written before "
        "the timed command.")
    add("- Each runtime has its own `--root` under one temporary directory. The runtimes "
        "are interleaved: conch, runc, crun, conch, runc, crun, … within every workload, "
        "so that drift in the machine's state affects all three alike.")
    add(f"- n = {o['n']} timed iterations per runtime for workloads 1–5 after {o['warmup']} "
        f"warm-up iteration(s) (one for 5); workload 4 with {o['containers']} created "
        f"containers per runtime ({3 * o['containers']} in all); workload 6 with "
        f"{o['batch']} containers per batch, {o['rounds']} round(s) (a round is conch, runc, "
        "crun back to back, then the same with 2 workers of half the containers each).")
    add("- A sample is the wall time from `posix_spawn` of the runtime command to its exit "
        "(`waitpid`), stdio on /dev/null; workload 2 sums `create`, `start` (of `sleep 10`) "
        "and `delete --force`. Peak RSS is GNU time's `%M`: the `ru_maxrss` that `wait4` "
        "reports for the runtime process, which covers the descendants it reaped (conch's "
        "forked init, runc's `runc init`).")
    add("- crun 1.8.1 refuses this VM's hybrid cgroup layout (v1 controllers plus a "
        "controller-less cgroup2 at /sys/fs/cgroup/unified). The benchmark therefore "
        "re-executes itself under `unshare -m --propagation private` and unmounts "
        "/sys/fs/cgroup/unified there — private to the benchmark's mount namespace, the host "
        "keeps it — and runs all three runtimes that way.")
    add(f"- Every container's `linux.cgroupsPath` is relative, "
        "`conch-bench-<token>/<runtime>/<id>`, the token unique to the session (conch and runc take a relative path from their "
        "own cgroup in each hierarchy; the list below shows where each runtime put it). At the end, every container left is deleted with "
        "`delete --force`, any process in those cgroups is killed, and every directory named "
        "`conch-bench-<token>` under /sys/fs/cgroup is removed; the benchmark then checks "
        "that none is left.\n")
    add("## What the runtimes left behind (and the benchmark removed)\n")
    add("Found at the end, after every container was deleted, under /sys/fs/cgroup in the "
        "benchmark's mount namespace (paths relative to /sys/fs/cgroup); all of it was "
        "then removed.\n")
    if res["leftovers"]:
        for x in res["leftovers"]:
            add(f"- {x}")
    else:
        add("- nothing")
    add(f"\nAfter the cleanup: {'; '.join(res['problems']) if res['problems'] else 'no container, process, cgroup directory or mount of the benchmark is left.'}\n")
    if res["failures"]:
        add("## Failures\n")
        add("Exact commands (`$TMP` is the benchmark's temporary directory), exit codes and "
            "stderr; a runtime stops a workload after 3 failures.\n")
        seen = {}
        for f in res["failures"]:
            k = (f["workload"], f["runtime"], f["stderr"])
            seen.setdefault(k, [f, 0])[1] += 1
        for (wk, rt, _e), (f, count) in seen.items():
            add(f"- [{wk}] {rt}, {count}×: `{f['cmd']}` → exit {f['rc']}")
            if f["stderr"]:
                add("  ```\n  " + f["stderr"][:1500].replace("\n", "\n  ") + "\n  ```")
        add("")
    add("## Reproduce\n")
    add("As root, on Debian 12 (it installs runc, crun, busybox-static, python3-matplotlib "
        "and time with apt-get if missing):\n")
    add("```sh\nsh bench/run.sh              # the full run: this document and the plot (~4 min)\n"
        "sh bench/run.sh --quick      # a smoke test (~15 s): results in bench/results/ only\n"
        "sh bench/run.sh -n 30        # fewer iterations per workload (default 100)\n"
        "sh bench/run.sh --conch /usr/local/bin/conch   # an installed conch instead of the checkout\n"
        "sh bench/run.sh --help       # all options\n```\n")
    add("Raw samples of every run: `bench/results/<date>/samples.json` (git-ignored).")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(prog="sh bench/run.sh", description=(
        "Benchmark conch against runc and crun on one busybox bundle (interleaved)."))
    p.add_argument("--quick", action="store_true",
                   help="smoke test: n=5, 1 warm-up, 20 containers for 4 and 6, 1 round; "
                        "does not write docs/ unless --docs")
    p.add_argument("-n", type=int, help="timed iterations per runtime for workloads 1-5 (default 100)")
    p.add_argument("--warmup", type=int, help="warm-up iterations (default 3)")
    p.add_argument("--containers", type=int, help="containers present for workload 4 (default 100)")
    p.add_argument("--batch", type=int, help="containers per batch in workload 6 (default 100)")
    p.add_argument("--rounds", type=int, help="rounds of workload 6 (default 10)")
    p.add_argument("--docs", dest="docs", action="store_true", default=None,
                   help="write docs/PERFORMANCE.md and docs/performance.png (default unless --quick)")
    p.add_argument("--no-docs", dest="docs", action="store_false")
    p.add_argument("--conch", metavar="PATH",
                   help="benchmark this conch launcher instead of installing the checkout "
                        "(tools/install.sh into a temp prefix)")
    p.add_argument("--inner", help=argparse.SUPPRESS)  # the host's mount namespace
    o = p.parse_args(argv)
    q = o.quick
    o.n = o.n if o.n is not None else (5 if q else 100)
    o.warmup = o.warmup if o.warmup is not None else (1 if q else 3)
    o.containers = o.containers if o.containers is not None else (20 if q else 100)
    o.batch = o.batch if o.batch is not None else (20 if q else 100)
    o.rounds = o.rounds if o.rounds is not None else (1 if q else 10)
    if o.docs is None:
        o.docs = not q
    if min(o.n, o.containers, o.batch, o.rounds) < 1 or o.warmup < 0:
        p.error("-n, --containers, --batch and --rounds must be at least 1")
    return o


def is_mountpoint_cgroup2(path):
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                parts = line.split()
                sep = parts.index("-")
                if parts[4] == path and parts[sep + 1] == "cgroup2":
                    return True
    except (OSError, ValueError):
        pass
    return False


def render(resdir):
    """Rebuild docs/PERFORMANCE.md and the plot from a run's samples.json."""
    with open(os.path.join(resdir, "samples.json")) as f:
        res = json.load(f)
    res["opts_ns"] = argparse.Namespace(**res["opts"])
    docs = os.path.join(REPO, "docs")
    plot(res, os.path.join(docs, "performance.png"))
    with open(os.path.join(docs, "PERFORMANCE.md"), "w") as f:
        f.write(markdown(res, "performance.png"))
    return 0


def main(argv):
    if argv[:1] == ["--render"]:
        return render(argv[1])
    opts = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench: must run as root")
    if not opts.inner:
        # a private mount namespace: the unmount below never reaches the host
        unshare = shutil.which("unshare", path=ENV["PATH"])
        os.execv(unshare, [unshare, "-m", "--propagation", "private", sys.executable, "-I",
                           os.path.abspath(__file__),
                           "--inner=" + os.readlink("/proc/self/ns/mnt")] + argv)
    if not opts.inner.startswith("mnt:") or os.readlink("/proc/self/ns/mnt") == opts.inner:
        raise SystemExit("bench: --inner outside a private mount namespace; use sh bench/run.sh")
    layout = "v1 controllers under /sys/fs/cgroup"
    if is_mountpoint_cgroup2(UNIFIED):
        subprocess.run(["umount", UNIFIED], check=True)
        layout += (" plus a controller-less cgroup2 at /sys/fs/cgroup/unified (hybrid), "
                   "unmounted in the benchmark's private mount namespace")
    elif is_mountpoint_cgroup2(CGROUP_ROOT):
        layout = "cgroup v2 (unified) at /sys/fs/cgroup"

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    t_start = time.time()
    load_start = loadavg()
    cpu_start = cpu_snapshot()
    token = os.urandom(3).hex()
    tmp = tempfile.mkdtemp(prefix=f"conch-bench-{token}.")
    bench = Bench(opts, tmp, token)
    problems = []
    interrupted = None
    try:
        bench.setup()
        print(f"bench: conch {bench.versions['conch']} | {bench.versions['runc']} | "
              f"{bench.versions['crun']}; temp dir {tmp}", flush=True)
        bench.run_all()
    except (Interrupted, KeyboardInterrupt) as e:
        interrupted = str(e) or "interrupted"
        print(f"bench: interrupted ({interrupted}), cleaning up", flush=True)
    finally:
        bench.stop.set()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
        try:
            problems = bench.cleanup()
        finally:
            bench.call.close()
            shutil.rmtree(tmp, ignore_errors=True)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
    if problems:
        print("bench: LEFT BEHIND:\n  " + "\n  ".join(problems), flush=True)
    if os.path.exists(tmp):
        problems.append(f"temporary directory not removed: {tmp}")
    if interrupted:
        return 130

    stats = {k: {rt: summary(v) for rt, v in d.items() if v} for k, d in bench.samples.items()}
    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    res = {
        "date": date, "duration": time.time() - t_start,
        "argv": [a for a in argv if not a.startswith("--inner")],
        "opts": {k: getattr(opts, k) for k in ("n", "warmup", "containers", "batch", "rounds", "quick",
                                                "conch")},
        "load": (load_start, loadavg()), "other_cpu": other_cpu(cpu_start, cpu_snapshot()), "opts_ns": opts, "machine": machine_info(), "versions": bench.versions,
        "commit": bench.commit, "cgroups": layout, "spec_note": bench.spec_note,
        "samples": bench.samples, "stats": stats, "na": bench.na,
        "failures": bench.failures, "leftovers": bench.leftovers, "problems": problems,
    }
    outdir = os.path.join(REPO, "bench", "results",
                          datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if opts.quick else ""))
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "samples.json"), "w") as f:
        json.dump({k: v for k, v in res.items() if k != "opts_ns"}, f, indent=1)
    png = os.path.join(outdir, "performance.png")
    plot(res, png)
    md = markdown(res, "performance.png")
    with open(os.path.join(outdir, "PERFORMANCE.md"), "w") as f:
        f.write(md)
    if opts.docs:
        docs = os.path.join(REPO, "docs")
        os.makedirs(docs, exist_ok=True)
        shutil.copyfile(png, os.path.join(docs, "performance.png"))
        with open(os.path.join(docs, "PERFORMANCE.md"), "w") as f:
            f.write(md)

    print()
    print(text_table(HEADER, table_rows(res, [w[0] for w in WORKLOADS])))
    print()
    print(text_table(HEADER, table_rows(res, [e[0] for e in EXTRA])))
    print()
    for row in targets(res):
        def st(r, status):
            status = status.replace("*", "")
            return status if r == "n/a" else f"{r} {status}"
        print(f"target: {row[0]}: {row[1]}: {st(row[2], row[3])}"
              + (f"; stretch {row[4]}: {st(row[5], row[6])}" if row[4] else ""))
    for k, d in bench.na.items():
        for rt, why in d.items():
            print(f"n/a: {k} {rt}: {why}")
    if bench.failures:
        print(f"bench: {len(bench.failures)} failed command(s), see the report")
    print(f"\nbench: raw samples and report in {os.path.relpath(outdir, REPO)}/"
          + ("; wrote docs/PERFORMANCE.md and docs/performance.png" if opts.docs else ""))
    print(f"bench: other load during the run: {100 * res['other_cpu']:.0f}% of the CPU capacity")
    print(f"bench: cleanup: {'; '.join(problems) if problems else 'nothing left behind'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
