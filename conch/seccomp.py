"""linux.seccomp: checked with the config, compiled by libseccomp in conch, loaded by the init.

Only a config with `linux.seccomp` imports this module, and only `create`,
`run` and `exec` then load libseccomp (dlopen of libseccomp.so.2, in conch,
before the fork): a container without seccomp pays nothing.

1. `parse` (from config.parse) checks the whole object, naming the field at
   fault: actions, architectures, flags, operators, argument indexes, errno
   values; SCMP_ACT_NOTIFY as the default action, on `write` or `sendmsg` (the
   init's own way of handing the listener fd over), or without listenerPath.
2. `build` (in conch, before the fork) compiles the profile with libseccomp
   (seccomp_init, seccomp_arch_add, seccomp_rule_add_array) into classic BPF
   (seccomp_export_bpf). Unknown syscall names are skipped, as runc skips
   them. A rule with several conditions on the same argument becomes one rule
   per condition (any of them matches), otherwise one rule with all of them
   (all must match), as runc does. A stub is put in front of libseccomp's
   program: for each architecture of the filter, a syscall number above the
   highest one the profile names gets ENOSYS instead of the default action, so
   a libc that tries a syscall newer than the profile (clone3, faccessat2...)
   falls back to the old one instead of failing with EPERM. As runc, no stub
   when the default action lets syscalls run (ALLOW, LOG) or already is
   ERRNO(ENOSYS).
3. The init loads the BPF with seccomp(2) (syscalls.seccomp_filter) at runc's
   point: with noNewPrivileges as late as possible (after no_new_privs, once
   the user, capabilities and executable are settled), without it before the
   capabilities are dropped (loading a filter without no_new_privs needs
   CAP_SYS_ADMIN). The init no longer runs any libseccomp code.
4. SCMP_ACT_NOTIFY: the filter is loaded with SECCOMP_FILTER_FLAG_NEW_LISTENER;
   the init passes the listener fd to conch over the sync socket (SCM_RIGHTS),
   and conch (`send_listener`) connects to listenerPath and sends the
   container process state (runtime-spec) with the fd, then closes its copy.
   The init waits for conch's answer before it goes on.
"""

import _ctypes
import _socket
from . import _os as os

from . import jsonlite
from . import syscalls as sc
from .errors import ConchError, ConfigError, describe

# --- the names of the runtime-spec and their values -----------------------------------

ACT_KILL_THREAD = 0x00000000
ACT_KILL_PROCESS = 0x80000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_NOTIFY = 0x7FC00000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

ACTIONS = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS, "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ERRNO": ACT_ERRNO, "SCMP_ACT_TRACE": ACT_TRACE, "SCMP_ACT_ALLOW": ACT_ALLOW,
    "SCMP_ACT_LOG": ACT_LOG, "SCMP_ACT_NOTIFY": ACT_NOTIFY,
}
OPERATORS = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}
# SCMP_ARCH_X -> libseccomp's name for it (seccomp_arch_resolve_name)
ARCHES = {f"SCMP_ARCH_{n.upper()}": n for n in (
    "x86", "x86_64", "x32", "arm", "aarch64", "mips", "mips64", "mips64n32", "mipsel",
    "mipsel64", "mipsel64n32", "ppc", "ppc64", "ppc64le", "s390", "s390x", "parisc",
    "parisc64", "riscv64")}
# seccomp(2) filter flags (linux/seccomp.h)
FLAG_TSYNC = 1
FLAG_LOG = 2
FLAG_SPEC_ALLOW = 4
FLAG_NEW_LISTENER = 8
FLAG_TSYNC_ESRCH = 16
FLAG_WAIT_KILLABLE_RECV = 32
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": FLAG_TSYNC, "SECCOMP_FILTER_FLAG_LOG": FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": FLAG_WAIT_KILLABLE_RECV,
}
EPERM = 1
ENOSYS = 38
# the init hands the listener fd over with sendmsg (and writes nothing before): a
# notification on these before the listener has the fd would never be answered
NOT_NOTIFIABLE = ("write", "sendmsg")


class Profile:
    """A checked linux.seccomp. `rules`: (field, names, action, args) with args as
    (index, op, value, valueTwo); actions carry their errno/trace data."""

    __slots__ = ("default", "arches", "flags", "rules", "listener_path", "listener_metadata",
                 "notify")


class Filter:
    """A compiled filter: what the init loads (`bpf`, seccomp(2) `flags`) and, for
    SCMP_ACT_NOTIFY, where conch sends the listener fd."""

    __slots__ = ("bpf", "flags", "notify", "listener_path", "listener_metadata")

    def send_listener(self, fd, pid, state_json):
        """4. notify: connect to listenerPath and send the container process state
        (runtime-spec) with the listener fd (SCM_RIGHTS); close our copy of the fd."""
        try:
            msg = ('{"ociVersion":"1.2.0","fds":["seccompFd"],"pid":' + str(pid)
                   + ',"metadata":' + jsonlite.dumps(self.listener_metadata)
                   + ',"state":' + state_json + "}").encode()
            s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                s.connect(self.listener_path)
                s.sendmsg([msg], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                   fd.to_bytes(4, "little"))])
            except OSError as e:
                raise ConchError(f"linux.seccomp.listenerPath: sending the seccomp fd to "
                                 f"{self.listener_path}: {e.strerror or e}") from None
            finally:
                s.close()
        finally:
            os.close(fd)


# --- 1. parse -------------------------------------------------------------------------

def _u(d, key, field, hi, default=None):
    v = d.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(field, f"expected integer, got {describe(v)}")
    if not 0 <= v <= hi:
        raise ConfigError(field, f"{v} is out of range (0 to {hi})")
    return v


def _s(d, key, field, required=False):
    v = d.get(key)
    if v is None:
        if required:
            raise ConfigError(field, "missing")
        return ""
    if not isinstance(v, str):
        raise ConfigError(field, f"expected string, got {describe(v)}")
    return v


def _names(d, key, field, table, what):
    v = d.get(key)
    if v is None:
        return []
    if not isinstance(v, list):
        raise ConfigError(field, f"expected array, got {describe(v)}")
    for i, name in enumerate(v):
        if not isinstance(name, str):
            raise ConfigError(f"{field}[{i}]", f"expected string, got {describe(name)}")
        if table is not None and name not in table:
            raise ConfigError(f"{field}[{i}]", f"unknown {what} {describe(name)}")
    return v


def _action(d, key, field, errno_key, errno_field):
    name = _s(d, key, field, required=True)
    if name not in ACTIONS:
        raise ConfigError(field, f"unknown action {describe(name)}")
    act = ACTIONS[name]
    errno = _u(d, errno_key, errno_field, 0xFFFF)
    if act in (ACT_ERRNO, ACT_TRACE):
        # as runc: errnoRet defaults to EPERM, for the trace message too
        act |= EPERM if errno is None else errno
    return act


def parse(raw, field="linux.seccomp"):
    if not isinstance(raw, dict):
        raise ConfigError(field, f"expected object, got {describe(raw)}")
    p = Profile()
    p.default = _action(raw, "defaultAction", field + ".defaultAction", "defaultErrnoRet",
                        field + ".defaultErrnoRet")
    if p.default == ACT_NOTIFY:
        raise ConfigError(field + ".defaultAction", "SCMP_ACT_NOTIFY cannot be the default "
                          "action (the init could not hand the listener fd over)")
    p.arches = _names(raw, "architectures", field + ".architectures", ARCHES, "architecture")
    p.flags = 0
    for name in _names(raw, "flags", field + ".flags", FLAGS, "flag"):
        p.flags |= FLAGS[name]
    p.listener_path = _s(raw, "listenerPath", field + ".listenerPath")
    p.listener_metadata = _s(raw, "listenerMetadata", field + ".listenerMetadata")
    if p.listener_path and not p.listener_path.startswith("/"):
        raise ConfigError(field + ".listenerPath",
                          f"must be an absolute path, got {describe(p.listener_path)}")
    p.rules = []
    p.notify = False
    calls = raw.get("syscalls")
    if calls is not None and not isinstance(calls, list):
        raise ConfigError(field + ".syscalls", f"expected array, got {describe(calls)}")
    for i, call in enumerate(calls or ()):
        f = f"{field}.syscalls[{i}]"
        if not isinstance(call, dict):
            raise ConfigError(f, f"expected object, got {describe(call)}")
        names = _names(call, "names", f + ".names", None, "")
        if not names:
            raise ConfigError(f + ".names", "must name at least one syscall")
        act = _action(call, "action", f + ".action", "errnoRet", f + ".errnoRet")
        if act == ACT_NOTIFY:
            p.notify = True
            for name in names:
                if name in NOT_NOTIFIABLE:
                    raise ConfigError(f + ".names", f"SCMP_ACT_NOTIFY cannot be used for "
                                      f"{describe(name)}: the init needs it to hand the "
                                      "listener fd over")
        args = call.get("args")
        if args is not None and not isinstance(args, list):
            raise ConfigError(f + ".args", f"expected array, got {describe(args)}")
        conds = []
        for j, a in enumerate(args or ()):
            fa = f"{f}.args[{j}]"
            if not isinstance(a, dict):
                raise ConfigError(fa, f"expected object, got {describe(a)}")
            index = _u(a, "index", fa + ".index", 5)
            if index is None:
                raise ConfigError(fa + ".index", "missing")
            value = _u(a, "value", fa + ".value", 0xFFFFFFFFFFFFFFFF)
            if value is None:
                raise ConfigError(fa + ".value", "missing")
            two = _u(a, "valueTwo", fa + ".valueTwo", 0xFFFFFFFFFFFFFFFF, 0)
            op = _s(a, "op", fa + ".op", required=True)
            if op not in OPERATORS:
                raise ConfigError(fa + ".op", f"unknown operator {describe(op)}")
            conds.append((index, OPERATORS[op], value, two))
        p.rules.append((f, names, act, conds))
    if p.notify and not p.listener_path:
        raise ConfigError(field + ".listenerPath", "required by SCMP_ACT_NOTIFY")
    return p


# --- 2. build (libseccomp, in conch) ----------------------------------------------------

class c_void_p(_ctypes._SimpleCData):
    _type_ = "P"


class _IntFunc(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL
    _restype_ = sc.c_int


class _PtrFunc(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL
    _restype_ = c_void_p


class _UIntFunc(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL
    _restype_ = sc.c_uint


_LIB = None


class _Libseccomp:
    """The libseccomp functions conch uses, from libseccomp.so.2."""

    def __init__(self, handle):
        self._handle = handle
        for name in ("seccomp_arch_add", "seccomp_arch_resolve_name", "seccomp_export_bpf",
                     "seccomp_rule_add_array", "seccomp_syscall_resolve_name",
                     "seccomp_syscall_resolve_name_arch", "seccomp_release"):
            setattr(self, name[8:], _IntFunc((name, self)))
        self.init = _PtrFunc(("seccomp_init", self))
        self.version = _PtrFunc(("seccomp_version", self))
        self.api_get = _UIntFunc(("seccomp_api_get", self))
        self.arch_native = _UIntFunc(("seccomp_arch_native", self))


class _U32x3(_ctypes.Array):
    _type_ = sc.c_uint
    _length_ = 3


def version(lib):
    """libseccomp's version, "2.5.4" (seccomp_version)."""
    return ".".join(str(n) for n in _U32x3.from_address(lib.version()))


def library():
    """libseccomp, loaded once (RTLD_NOW); a clear error when it is not installed."""
    global _LIB
    if _LIB is None:
        try:
            _LIB = _Libseccomp(_ctypes.dlopen("libseccomp.so.2", 2))
        except OSError as e:
            raise ConchError(f"linux.seccomp: libseccomp.so.2 cannot be loaded ({e}); "
                             "install libseccomp (Debian: libseccomp2)") from None
    return _LIB


AUDIT_ARCH_X86_64 = 0xC000003E
X32_TOKEN = 0x4000003E  # libseccomp's SCMP_ARCH_X32: x86_64 audit arch, syscalls with bit 30
X32_BIT = 0x40000000
CACHE_FORMAT = 1


def build(p, raw, cache_dir=None):
    """Compile a Profile (parsed from `raw`) into a Filter: classic BPF and seccomp(2)
    flags. With cache_dir, the BPF of a profile compiled before is read from there."""
    lib = library()
    bpf = None
    name = None
    if cache_dir:
        name = _cache_name(lib, raw)
        bpf = _cache_get(cache_dir, name)
    if bpf is None:
        bpf = _compile(lib, p)
        if cache_dir:
            _cache_put(cache_dir, name, bpf)
    f = Filter()
    f.bpf = bpf
    f.flags = p.flags
    f.notify = p.notify
    if p.notify:
        f.flags |= FLAG_NEW_LISTENER
        if f.flags & FLAG_TSYNC:
            f.flags |= FLAG_TSYNC_ESRCH  # the kernel refuses TSYNC with a listener otherwise
    f.listener_path = p.listener_path
    f.listener_metadata = p.listener_metadata
    return f


# The cache: compiling Docker's default profile for x86_64, x86 and x32 takes
# libseccomp 12-17 ms here, more than the rest of a container's start. Engines
# pass the same profile to every container, so the BPF is kept in
# <state root>/.seccomp/<sha256 of what it depends on>: the profile's JSON,
# libseccomp's version and API level, the kernel release and this format.
# The directory is conch's own (0700); a file that is not a whole program, or
# a directory owned by someone else, is not used.

def _cache_name(lib, raw):
    import _sha256  # noqa: PLC0415 - a builtin C module, 0.05 ms
    u = os.uname()
    key = (f"conch-seccomp {CACHE_FORMAT} libseccomp {version(lib)} api "
           f"{lib.api_get()} {u.release} {u.machine}\n" + jsonlite.dumps(raw)).encode()
    return _sha256.sha256(key).hexdigest()


def _cache_get(cache_dir, name):
    try:
        fd = os.open(os.path.join(cache_dir, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022 or st.st_size > 65536:
            return None
        data = os.read(fd, st.st_size + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if data and len(data) % 8 == 0 else None


def _cache_put(cache_dir, name, bpf):
    try:
        try:
            os.mkdir(cache_dir, 0o700)
        except FileExistsError:
            st = os.lstat(cache_dir)
            if st.st_uid != os.geteuid() or (st.st_mode & 0o170777) != 0o040700:
                return
        tmp = os.path.join(cache_dir, f".{name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            os.write(fd, bpf)
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(cache_dir, name))
    except OSError:
        pass  # no cache: the next container compiles again


def _compile(lib, p):
    ctx = lib.init(sc.c_uint(p.default))
    if not ctx:
        raise ConchError("linux.seccomp: seccomp_init failed")
    ctx = c_void_p(ctx)
    try:
        native = lib.arch_native()
        tokens = [native]
        for i, name in enumerate(p.arches):
            tok = lib.arch_resolve_name(ARCHES[name].encode()) & 0xFFFFFFFF
            if not tok:
                raise ConfigError(f"linux.seccomp.architectures[{i}]",
                                  f"{name} is not known to this libseccomp")
            rc = lib.arch_add(ctx, sc.c_uint(tok))
            if rc < 0 and rc != -17:  # EEXIST: the native one is always there
                raise ConfigError(f"linux.seccomp.architectures[{i}]",
                                  f"seccomp_arch_add {name}: {os.strerror(-rc)}")
            if tok not in tokens:
                tokens.append(tok)
        highest = {tok: -1 for tok in tokens}
        for field, names, act, conds in p.rules:
            for name in names:
                b = name.encode()
                nr = lib.syscall_resolve_name(b)
                if nr == -1:
                    continue  # not a syscall libseccomp knows: skipped, as runc
                for tok in tokens:
                    n = lib.syscall_resolve_name_arch(sc.c_uint(tok), b)
                    if n >= 0 and n > highest[tok]:
                        highest[tok] = n
                if act != p.default:  # libseccomp refuses a rule that is the default
                    _add_rule(lib, ctx, field, name, nr, act, conds)
        fd = os.memfd_create("conch-seccomp", os.MFD_CLOEXEC)
        try:
            rc = lib.export_bpf(ctx, fd)
            if rc < 0:
                raise ConchError(f"linux.seccomp: seccomp_export_bpf: {os.strerror(-rc)}")
            size = os.lseek(fd, 0, 2)
            os.lseek(fd, 0, 0)
            prog = b""
            while len(prog) < size:
                chunk = os.read(fd, size - len(prog))
                if not chunk:
                    break
                prog += chunk
        finally:
            os.close(fd)
    finally:
        lib.release(ctx)
    stub = b""
    if p.default not in (ACT_ALLOW, ACT_LOG) and p.default != ACT_ERRNO | ENOSYS:
        stub = enosys_stub(highest)
    bpf = stub + prog
    if len(bpf) // 8 > 4096:  # BPF_MAXINSNS
        raise ConchError(f"linux.seccomp: the filter has {len(bpf) // 8} instructions, "
                         "more than the kernel's 4096")
    return bpf


def _add_rule(lib, ctx, field, name, nr, act, conds):
    """One rule with all conditions (AND), or, when two conditions test the same
    argument, one rule per condition (OR), as runc does."""
    indexes = [c[0] for c in conds]
    groups = [conds] if len(set(indexes)) == len(indexes) else [[c] for c in conds]
    for group in groups:
        arr = b"".join(i.to_bytes(4, "little") + op.to_bytes(4, "little")
                       + a.to_bytes(8, "little") + b.to_bytes(8, "little")
                       for i, op, a, b in group)  # struct scmp_arg_cmp
        rc = lib.rule_add_array(ctx, sc.c_uint(act), sc.c_int(nr), sc.c_uint(len(group)),
                                arr or None)
        if rc < 0:
            raise ConfigError(field, f"adding the rule for {describe(name)}: "
                              f"{os.strerror(-rc).lower()}")


# classic BPF (linux/filter.h): ld [k]; jeq/jgt/jset #k; ret #k
_LD_ABS = 0x20
_JEQ = 0x15
_JGT = 0x25
_JSET = 0x45
_RET = 0x06


def enosys_stub(highest):
    """BPF that returns ENOSYS for a syscall number above `highest[arch token]` of
    its architecture, and otherwise falls through to the program that follows."""
    blocks = {}  # audit arch -> {"native": max, "x32": max}
    for tok, top in highest.items():
        if top < 0:
            continue
        if tok == X32_TOKEN:
            blocks.setdefault(AUDIT_ARCH_X86_64, {})["x32"] = top
        else:
            blocks.setdefault(tok, {})["native"] = top
    if not blocks:
        return b""
    # instructions as (code, jt label, jf label, k); labels resolved below
    ins = []
    for n, (arch, tops) in enumerate(blocks.items()):
        nxt = f"arch{n + 1}" if n + 1 < len(blocks) else "filter"
        ins.append((f"arch{n}", _LD_ABS, None, None, 4))
        ins.append((None, _JEQ, None, nxt, arch))
        ins.append((None, _LD_ABS, None, None, 0))
        if arch == AUDIT_ARCH_X86_64:
            if "native" in tops and "x32" in tops:
                ins.append((None, _JSET, f"x32_{n}", None, X32_BIT))
                ins.append((None, _JGT, "enosys", "filter", tops["native"]))
                ins.append((f"x32_{n}", _JGT, "enosys", "filter", tops["x32"]))
            elif "x32" in tops:
                ins.append((None, _JSET, None, "filter", X32_BIT))
                ins.append((None, _JGT, "enosys", "filter", tops["x32"]))
            else:
                ins.append((None, _JSET, "filter", None, X32_BIT))
                ins.append((None, _JGT, "enosys", "filter", tops["native"]))
        else:
            ins.append((None, _JGT, "enosys", "filter", tops["native"]))
    ins.append(("enosys", _RET, None, None, ACT_ERRNO | ENOSYS))
    labels = {lab: i for i, (lab, *_rest) in enumerate(ins) if lab}
    labels["filter"] = len(ins)
    out = bytearray()
    for i, (_lab, code, jt, jf, k) in enumerate(ins):
        t = labels[jt] - i - 1 if jt else 0
        f = labels[jf] - i - 1 if jf else 0
        out += code.to_bytes(2, "little") + bytes((t, f)) + (k & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(out)
