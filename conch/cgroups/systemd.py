"""The systemd cgroup driver (--systemd-cgroup): the container is a transient
scope unit that systemd makes, asked for over D-Bus, as runc does.

`linux.cgroupsPath` is "slice:prefix:name" (default "system.slice:conch:<id>"):
the unit is "<prefix>-<name>.scope" in that slice, so the cgroup is
<slice path>/<unit>, e.g. /system.slice/conch-web.scope; a slice name
"a-b.slice" nests as /a.slice/a-b.slice. After fork, conch asks systemd's
manager to StartTransientUnit with the init's pid (Delegate=yes, the
resources as unit properties) and waits for the job's JobRemoved signal;
then, as runc does, it makes the directories systemd left out and writes the
resource files itself through the cgroupfs driver (v1.py or v2.py), so the
values are exactly the config's. `delete` stops the unit (StopUnit) and
removes what is left.

D-Bus is spoken here directly: a unix socket, the EXTERNAL authentication,
and the binary message format (marshalling below), with no library. The bus
is $DBUS_SYSTEM_BUS_ADDRESS, else /run/dbus/system_bus_socket; without a bus,
systemd's own socket /run/systemd/private (a peer connection: no Hello, no
match rules, signals come unasked).
"""

import _socket
from .. import _os as os

from ..errors import ConchError
from .common import UNIFIED, Manager, effective_device_rules, is_cgroup2, is_v2_host

# --- D-Bus marshalling -------------------------------------------------------------------

_ALIGN = {"y": 1, "b": 4, "n": 2, "q": 2, "i": 4, "u": 4, "x": 8, "t": 8, "d": 8, "h": 4,
          "s": 4, "o": 4, "g": 1, "a": 4, "(": 8, "{": 8, "v": 1}
_FIXED = {"y": (1, False), "n": (2, True), "q": (2, False), "i": (4, True), "u": (4, False),
          "x": (8, True), "t": (8, False), "h": (4, False)}

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
NO_REPLY_EXPECTED = 1
F_PATH, F_INTERFACE, F_MEMBER, F_ERROR_NAME, F_REPLY_SERIAL, F_DESTINATION, F_SENDER, \
    F_SIGNATURE = range(1, 9)
_FIELD_TYPES = {F_PATH: "o", F_INTERFACE: "s", F_MEMBER: "s", F_ERROR_NAME: "s",
                F_REPLY_SERIAL: "u", F_DESTINATION: "s", F_SENDER: "s", F_SIGNATURE: "g"}


class DBusError(ConchError):
    def __init__(self, name, message):
        super().__init__(f"{name}: {message}" if message else name)
        self.name = name


class Variant:
    """A D-Bus variant: a value with its own signature."""

    __slots__ = ("sig", "value")

    def __init__(self, sig, value):
        self.sig = sig
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Variant) and (self.sig, self.value) == (other.sig, other.value)

    def __repr__(self):
        return f"Variant({self.sig!r}, {self.value!r})"


def split_sig(sig):
    """"a{sv}s(ii)" -> ["a{sv}", "s", "(ii)"]: the complete types of a signature."""
    out = []
    i = 0
    while i < len(sig):
        j = _type_end(sig, i)
        out.append(sig[i:j])
        i = j
    return out


def _type_end(sig, i):
    c = sig[i]
    if c == "a":
        return _type_end(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        depth = 0
        for j in range(i, len(sig)):
            if sig[j] == c:
                depth += 1
            elif sig[j] == close:
                depth -= 1
                if depth == 0:
                    return j + 1
        raise ValueError(f"unbalanced signature {sig!r}")
    if c not in _ALIGN:
        raise ValueError(f"unknown type code {c!r} in {sig!r}")
    return i + 1


class Writer:
    """Marshals values by signature into little-endian D-Bus wire format."""

    def __init__(self, offset=0):
        self.buf = bytearray()
        self.offset = offset  # alignment is relative to the message start

    def pad(self, n):
        while (self.offset + len(self.buf)) % n:
            self.buf.append(0)

    def put(self, sig, values):
        """Marshal `values` (a sequence, one item per complete type of `sig`)."""
        types = split_sig(sig)
        if len(types) != len(values):
            raise ValueError(f"signature {sig!r} wants {len(types)} values, got {len(values)}")
        for t, v in zip(types, values):
            self._one(t, v)

    def _one(self, t, v):
        c = t[0]
        self.pad(_ALIGN[c])
        if c in _FIXED:
            size, signed = _FIXED[c]
            self.buf += int(v).to_bytes(size, "little", signed=signed)
        elif c == "b":
            self.buf += (1 if v else 0).to_bytes(4, "little")
        elif c == "d":
            import struct  # noqa: PLC0415 - never used by conch's own messages
            self.buf += struct.pack("<d", v)
        elif c in "so":
            b = v.encode()
            self.buf += len(b).to_bytes(4, "little") + b + b"\0"
        elif c == "g":
            b = v.encode()
            self.buf += bytes((len(b),)) + b + b"\0"
        elif c == "v":
            self._one("g", v.sig)
            self._one(v.sig, v.value)
        elif c == "(":
            inner = split_sig(t[1:-1])
            for it, iv in zip(inner, v):
                self._one(it, iv)
        elif c == "a":
            elem = t[1:]
            at = len(self.buf)
            self.buf += bytes(4)
            self.pad(_ALIGN[elem[0]])
            start = len(self.buf)
            items = v.items() if elem[0] == "{" else v
            if elem == "y" and isinstance(v, (bytes, bytearray)):
                self.buf += v
            else:
                for item in items:
                    self._one(elem, item)
            self.buf[at:at + 4] = (len(self.buf) - start).to_bytes(4, "little")
        elif c == "{":
            kt, vt = split_sig(t[1:-1])
            self._one(kt, v[0])
            self._one(vt, v[1])
        else:
            raise ValueError(f"cannot marshal type {t!r}")


class Reader:
    def __init__(self, data, pos=0):
        self.data = data
        self.pos = pos

    def align(self, n):
        self.pos = (self.pos + n - 1) // n * n

    def get(self, sig):
        return [self._one(t) for t in split_sig(sig)]

    def _one(self, t):
        c = t[0]
        self.align(_ALIGN[c])
        d = self.data
        if c in _FIXED:
            size, signed = _FIXED[c]
            v = int.from_bytes(d[self.pos:self.pos + size], "little", signed=signed)
            self.pos += size
            return v
        if c == "b":
            v = int.from_bytes(d[self.pos:self.pos + 4], "little")
            self.pos += 4
            return bool(v)
        if c == "d":
            import struct  # noqa: PLC0415
            v = struct.unpack_from("<d", d, self.pos)[0]
            self.pos += 8
            return v
        if c in "so":
            n = int.from_bytes(d[self.pos:self.pos + 4], "little")
            v = bytes(d[self.pos + 4:self.pos + 4 + n]).decode()
            self.pos += 4 + n + 1
            return v
        if c == "g":
            n = d[self.pos]
            v = bytes(d[self.pos + 1:self.pos + 1 + n]).decode()
            self.pos += 1 + n + 1
            return v
        if c == "v":
            sig = self._one("g")
            return Variant(sig, self._one(sig))
        if c == "(":
            return tuple(self._one(it) for it in split_sig(t[1:-1]))
        if c == "a":
            n = int.from_bytes(d[self.pos:self.pos + 4], "little")
            self.pos += 4
            elem = t[1:]
            self.align(_ALIGN[elem[0]])
            end = self.pos + n
            if elem == "y":
                v = bytes(d[self.pos:end])
                self.pos = end
                return v
            items = []
            while self.pos < end:
                items.append(self._one(elem))
            return dict(items) if elem[0] == "{" else items
        if c == "{":
            kt, vt = split_sig(t[1:-1])
            return (self._one(kt), self._one(vt))
        raise ValueError(f"cannot unmarshal type {t!r}")


class Message:
    __slots__ = ("type", "flags", "serial", "fields", "body", "sig")

    def __init__(self, type_, serial=0, fields=None, sig="", body=(), flags=0):
        self.type = type_
        self.flags = flags
        self.serial = serial
        self.fields = fields or {}
        self.sig = sig
        self.body = list(body)

    def encode(self):
        bw = Writer()
        if self.sig:
            bw.put(self.sig, self.body)
        fields = dict(self.fields)
        if self.sig:
            fields[F_SIGNATURE] = self.sig
        hw = Writer()
        hw.buf += b"l" + bytes((self.type, self.flags, 1))
        hw.buf += len(bw.buf).to_bytes(4, "little") + self.serial.to_bytes(4, "little")
        hw._one("a(yv)", [(code, Variant(_FIELD_TYPES[code], v))
                          for code, v in sorted(fields.items())])
        hw.pad(8)
        return bytes(hw.buf + bw.buf)

    @classmethod
    def decode(cls, data):
        """(Message, bytes used) or (None, 0) when `data` holds less than a message."""
        if len(data) < 16:
            return None, 0
        if data[0:1] != b"l":
            raise ConchError("D-Bus: big-endian messages are not supported")
        body_len = int.from_bytes(data[4:8], "little")
        fields_len = int.from_bytes(data[12:16], "little")
        header_end = 16 + fields_len
        header_end += (-header_end) % 8
        total = header_end + body_len
        if len(data) < total:
            return None, 0
        r = Reader(data, 12)
        raw = r._one("a(yv)")
        m = cls(data[1], int.from_bytes(data[8:12], "little"),
                {code: v.value for code, v in raw}, flags=data[2])
        m.sig = m.fields.get(F_SIGNATURE, "")
        if m.sig:
            m.body = Reader(data[:total], header_end).get(m.sig)
        return m, total

    def __repr__(self):
        return f"Message({self.type}, {self.fields}, {self.sig!r}, {self.body!r})"


def _address():
    addr = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or "unix:path=/run/dbus/system_bus_socket"
    for part in addr.split(";"):
        kind, _, rest = part.partition(":")
        if kind != "unix":
            continue
        kv = dict(x.split("=", 1) for x in rest.split(",") if "=" in x)
        if "path" in kv:
            return kv["path"], True
        if "abstract" in kv:
            return "\0" + kv["abstract"], True
    raise ConchError(f"D-Bus: no unix address in {addr!r}")


class Connection:
    """A D-Bus connection to the system bus (or systemd's private socket)."""

    def __init__(self, path=None, bus=True, timeout=30.0):
        if path is None:
            path, bus = _address()
            if not path.startswith("\0") and not os.path.exists(path) \
                    and os.path.exists("/run/systemd/private"):
                path, bus = "/run/systemd/private", False
        self.bus = bus
        self.serial = 0
        self.inbox = b""
        self.pending = []  # messages read while waiting for something else
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
            self._auth()
            self.unique_name = self.call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                         "org.freedesktop.DBus", "Hello")[0] if bus else None
        except OSError as e:
            self.sock.close()
            raise ConchError(f"connecting to D-Bus at {path.lstrip(chr(0))}: "
                             f"{e.strerror or e}") from None
        except ConchError:
            self.sock.close()
            raise

    def close(self):
        self.sock.close()

    def _auth(self):
        """EXTERNAL authentication, pipelined as sd-bus does it: all lines at once,
        then the answers. (systemd's private socket does not see a first message
        that arrives in the same read as BEGIN; once its answers are read, BEGIN
        has been taken and the first message arrives on its own.)"""
        uid = str(os.geteuid()).encode().hex().encode()
        self.sock.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n")
        line = self._line()
        if not line.startswith(b"OK "):
            raise ConchError(f"D-Bus authentication refused: {line.decode(errors='replace')}")
        self._line()  # AGREE_UNIX_FD, or ERROR: conch passes no fds either way

    def _line(self):
        while b"\r\n" not in self.inbox:
            data = self.sock.recv(4096)
            if not data:
                raise ConchError("D-Bus: connection closed during authentication")
            self.inbox += data
        line, _, self.inbox = self.inbox.partition(b"\r\n")
        return line

    def send(self, msg):
        self.serial += 1
        msg.serial = self.serial
        self.sock.sendall(msg.encode())
        return msg.serial

    def recv(self):
        while True:
            m, used = Message.decode(self.inbox)
            if m is not None:
                self.inbox = self.inbox[used:]
                return m
            data = self.sock.recv(65536)
            if not data:
                raise ConchError("D-Bus: connection closed")
            self.inbox += data

    def call(self, dest, path, iface, member, sig="", *args):
        fields = {F_PATH: path, F_INTERFACE: iface, F_MEMBER: member}
        if dest and self.bus:
            fields[F_DESTINATION] = dest
        serial = self.send(Message(METHOD_CALL, fields=fields, sig=sig, body=args))
        while True:
            m = self.recv()
            if m.type in (METHOD_RETURN, ERROR) and m.fields.get(F_REPLY_SERIAL) == serial:
                if m.type == ERROR:
                    text = m.body[0] if m.body and isinstance(m.body[0], str) else ""
                    raise DBusError(m.fields.get(F_ERROR_NAME, "error"), text)
                return m.body
            self.pending.append(m)

    def wait_signal(self, match):
        """The first signal (pending or new) for which match(msg) is true."""
        for i, m in enumerate(self.pending):
            if m.type == SIGNAL and match(m):
                return self.pending.pop(i)
        while True:
            m = self.recv()
            if m.type == SIGNAL and match(m):
                return m
            self.pending.append(m)


# --- systemd's manager ------------------------------------------------------------------

SD = "org.freedesktop.systemd1"
SD_PATH = "/org/freedesktop/systemd1"
SD_MGR = "org.freedesktop.systemd1.Manager"


class Systemd:
    def __init__(self, conn=None):
        self.conn = conn or Connection()
        if self.conn.bus:
            self.conn.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                           "AddMatch", "s",
                           f"type='signal',sender='{SD}',path='{SD_PATH}',"
                           f"interface='{SD_MGR}',member='JobRemoved'")

    def _job(self, job, unit, what):
        sig = self.conn.wait_signal(lambda m: m.fields.get(F_MEMBER) == "JobRemoved"
                                    and len(m.body) == 4 and m.body[1] == job)
        result = sig.body[3]
        if result != "done":
            raise ConchError(f"systemd: {what} {unit}: job {result}")

    def start_transient(self, unit, props):
        try:
            job = self.conn.call(SD, SD_PATH, SD_MGR, "StartTransientUnit", "ssa(sv)a(sa(sv))",
                                 unit, "replace", props, [])[0]
        except DBusError as e:
            if e.name == "org.freedesktop.systemd1.UnitExists":
                raise ConchError(f"systemd: unit {unit} already exists") from None
            raise ConchError(f"systemd: starting {unit}: {e}") from None
        self._job(job, unit, "starting")

    def stop(self, unit):
        try:
            job = self.conn.call(SD, SD_PATH, SD_MGR, "StopUnit", "ss", unit, "replace")[0]
        except DBusError as e:
            if e.name in ("org.freedesktop.systemd1.NoSuchUnit",
                          "org.freedesktop.DBus.Error.UnknownObject"):
                return False
            raise ConchError(f"systemd: stopping {unit}: {e}") from None
        try:
            self._job(job, unit, "stopping")
        finally:
            try:
                self.conn.call(SD, SD_PATH, SD_MGR, "ResetFailedUnit", "s", unit)
            except DBusError:
                pass
        return True

    def set_properties(self, unit, props):
        try:
            self.conn.call(SD, SD_PATH, SD_MGR, "SetUnitProperties", "sba(sv)", unit, True, props)
        except DBusError as e:
            raise ConchError(f"systemd: setting properties of {unit}: {e}") from None

    def unit_state(self, unit):
        """The unit's ActiveState, or None when systemd has no such unit loaded."""
        try:
            return self.unit_property(unit, "org.freedesktop.systemd1.Unit", "ActiveState")
        except DBusError as e:
            if e.name == "org.freedesktop.systemd1.NoSuchUnit":
                return None
            raise ConchError(f"systemd: {unit}: {e}") from None

    def reset_failed(self, unit):
        try:
            self.conn.call(SD, SD_PATH, SD_MGR, "ResetFailedUnit", "s", unit)
        except DBusError:
            pass

    def unit_property(self, unit, iface, name):
        path = self.conn.call(SD, SD_PATH, SD_MGR, "GetUnit", "s", unit)[0]
        return self.conn.call(SD, path, "org.freedesktop.DBus.Properties", "Get", "ss",
                              iface, name)[0].value


# --- paths ----------------------------------------------------------------------------------

def expand_slice(name):
    """"a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" -> "/"."""
    if name == "-.slice":
        return "/"
    if not name.endswith(".slice") or "/" in name:
        raise ConchError(f"linux.cgroupsPath: invalid slice name {name!r}")
    base = name[:-len(".slice")]
    if not base or base.startswith("-") or base.endswith("-") or "--" in base:
        raise ConchError(f"linux.cgroupsPath: invalid slice name {name!r}")
    path = ""
    prefix = ""
    for comp in base.split("-"):
        prefix += comp
        path += f"/{prefix}.slice"
        prefix += "-"
    return path


def parse_path(cgpath, cid):
    """linux.cgroupsPath "slice:prefix:name" -> (slice, unit, cgroup path)."""
    if not cgpath:
        cgpath = f"system.slice:conch:{cid}"
    parts = cgpath.split(":")
    if len(parts) != 3:
        raise ConchError('linux.cgroupsPath: expected "slice:prefix:name" for systemd cgroups, '
                         f"got {cgpath!r}")
    slice_, prefix, name = parts
    slice_ = slice_ or "system.slice"
    if not name or "/" in name or "/" in prefix:
        raise ConchError(f"linux.cgroupsPath: invalid unit name in {cgpath!r}")
    if name.endswith(".slice"):
        raise ConchError(f"linux.cgroupsPath: {cgpath!r}: a slice as the container's own unit "
                         "is not supported (give a scope name)")
    unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    base = expand_slice(slice_)
    return slice_, unit, (base.rstrip("/") + "/" + unit)


# --- properties ------------------------------------------------------------------------

U64_MAX = (1 << 64) - 1


def _cpu_bitmask(s):
    from .resources import parse_cpu_list  # noqa: PLC0415
    cpus = parse_cpu_list(s)
    if not cpus:
        return b""
    mask = bytearray(max(cpus) // 8 + 1)
    for c in cpus:
        mask[c // 8] |= 1 << (c % 8)
    return bytes(mask)


def _device_allows(rules):
    """DevicePolicy=strict and DeviceAllow entries for a default-deny list; None
    when the rules allow everything by default (systemd has no deny list)."""
    allow_all, entries = effective_device_rules(rules)
    if allow_all:
        return None
    names = {}
    try:
        with open("/proc/devices") as f:
            kind = None
            for line in f:
                line = line.strip()
                if line.startswith("Character"):
                    kind = "char"
                elif line.startswith("Block"):
                    kind = "block"
                elif line and kind:
                    num, _, dname = line.partition(" ")
                    names.setdefault((kind, int(num)), dname)
    except OSError:
        pass
    out = []
    for (typ, major, minor), access in sorted(entries.items()):
        kind = "char" if typ == "c" else "block"
        acc = "".join(c for c in "rwm" if c in access)
        if major < 0:
            out.append((f"{kind}-*", acc))
        elif minor < 0:
            if (kind, major) in names:
                out.append((f"{kind}-{names[(kind, major)]}", acc))
        else:
            out.append((f"/dev/{kind}/{major}:{minor}", acc))
    return out


def unit_properties(res, rules, v2, pid, slice_=None, description=""):
    """A new scope's properties (a(sv)): what runc sets, then the resources."""
    V = Variant
    p = []
    if description:
        p.append(("Description", V("s", description)))
    if slice_:
        p.append(("Slice", V("s", slice_)))
    p.append(("PIDs", V("au", [pid])))
    p.append(("Delegate", V("b", True)))
    p.append(("DefaultDependencies", V("b", False)))
    for acct in ("MemoryAccounting", "CPUAccounting", "TasksAccounting",
                 "IOAccounting" if v2 else "BlockIOAccounting"):
        p.append((acct, V("b", True)))
    return p + properties(res, rules, v2)


def properties(res, rules, v2):
    """The unit properties (a(sv)) that carry these resources and device rules."""
    V = Variant
    p = []
    if res is not None:
        m = res.memory
        if m is not None:
            if m.limit:
                p.append(("MemoryMax" if v2 else "MemoryLimit",
                          V("t", U64_MAX if m.limit == -1 else m.limit)))
            if v2 and m.reservation:
                p.append(("MemoryLow", V("t", U64_MAX if m.reservation == -1 else m.reservation)))
            if v2 and m.swap:
                from .resources import swap_to_v2  # noqa: PLC0415
                s = swap_to_v2(m.swap, m.limit)
                if s is not None:
                    p.append(("MemorySwapMax", V("t", U64_MAX if s == -1 else s)))
        c = res.cpu
        if c is not None:
            if c.shares:
                if v2:
                    from .resources import shares_to_weight  # noqa: PLC0415
                    p.append(("CPUWeight", V("t", shares_to_weight(c.shares))))
                else:
                    p.append(("CPUShares", V("t", c.shares)))
            if c.period:
                p.append(("CPUQuotaPeriodUSec", V("t", c.period)))
            if c.quota:
                if c.quota < 0:
                    per_sec = U64_MAX
                else:
                    per_sec = c.quota * 1_000_000 // (c.period or 100_000)
                    if per_sec % 10_000:  # systemd keeps 10 ms steps: round up
                        per_sec = (per_sec // 10_000 + 1) * 10_000
                p.append(("CPUQuotaPerSecUSec", V("t", per_sec)))
            if v2 and c.cpus:
                p.append(("AllowedCPUs", V("ay", _cpu_bitmask(c.cpus))))
            if v2 and c.mems:
                p.append(("AllowedMemoryNodes", V("ay", _cpu_bitmask(c.mems))))
        if res.pids is not None:
            p.append(("TasksMax", V("t", U64_MAX if res.pids < 0 else res.pids)))
        b = res.block_io
        if b is not None and b.weight:
            if v2:
                from .resources import blkio_weight_to_io  # noqa: PLC0415
                p.append(("IOWeight", V("t", blkio_weight_to_io(b.weight))))
            else:
                p.append(("BlockIOWeight", V("t", b.weight)))
    if rules is not None:
        allows = _device_allows(rules)
        if allows is not None:
            p.append(("DevicePolicy", V("s", "strict")))
            p.append(("DeviceAllow", V("a(ss)", allows)))
    return p


# --- the driver --------------------------------------------------------------------------

class SystemdManager(Manager):
    """A transient scope; the files are handled by the cgroupfs driver `fs`."""

    driver = "systemd"
    self_join_file = None
    child_waits = True  # the init waits until the unit exists and the limits are set

    def __init__(self, fs, unit, slice_, cid=""):
        self.fs = fs
        self.unit = unit
        self.slice = slice_
        self.cid = cid
        self.version = fs.version
        self.rules = None
        self.res = None
        self._sd = None
        self.owned = True  # False while a new container's unit is not started yet

    @classmethod
    def for_path(cls, cgpath, cid):
        slice_, unit, path = parse_path(cgpath, cid)
        if is_v2_host():
            from .v2 import V2Manager  # noqa: PLC0415
            fs = V2Manager.for_path(path, cid)
        else:
            from .v1 import V1Manager  # noqa: PLC0415
            fs = V1Manager.for_path(path, cid, unified=is_cgroup2(UNIFIED))
        m = cls(fs, unit, slice_, cid)
        m.owned = False
        return m

    @property
    def dirs(self):
        return self.fs.dirs

    def to_state(self):
        d = self.fs.to_state()
        d.update(driver="systemd", unit=self.unit, slice=self.slice)
        return d

    @classmethod
    def from_state(cls, d):
        if d.get("version") == 2:
            from .v2 import V2Manager  # noqa: PLC0415
            fs = V2Manager(d.get("dirs", {}))
        else:
            from .v1 import V1Manager  # noqa: PLC0415
            fs = V1Manager(d.get("dirs", {}))
        return cls(fs, d.get("unit", ""), d.get("slice", ""))

    @property
    def sd(self):
        if self._sd is None:
            self._sd = Systemd()
        return self._sd

    def create(self):
        """Before the fork: connect (no systemd, no fork) and check the unit is new.
        The directories are made once systemd has made the unit (join_child); the
        init waits for that (child_waits)."""
        state = self.sd.unit_state(self.unit)
        if state in ("active", "activating", "reloading", "deactivating"):
            raise ConchError(f"systemd: unit {self.unit} already exists ({state})")
        if state is not None:
            self.sd.reset_failed(self.unit)  # a leftover (failed, inactive): forget it

    def configure(self, rules, res):
        self.rules = rules
        self.res = res

    def parent_join_dirs(self):
        return list(self.fs.dirs.values())

    def clone_into(self):
        return None  # systemd moves the init into the unit it makes

    def join_child(self, pid, skip=None):
        """Start the scope with the init in it, then finish what systemd does not do."""
        props = unit_properties(self.res, self.rules, self.fs.version == 2, pid,
                                slice_=self.slice,
                                description=f"conch container {self.cid}")
        self.sd.start_transient(self.unit, props)
        self.owned = True
        try:
            self.fs.create()  # the hierarchies systemd left out
            try:
                self.fs.join(pid, list(self.fs.dirs.values()))
            except OSError as e:
                raise ConchError(f"joining the cgroup of {self.unit}: {e.filename}: "
                                 f"{e.strerror}") from None
            self.fs.set_devices(self.rules)
            if self.res is not None:
                self.fs.apply(self.res)
        except BaseException:
            self.destroy()
            raise

    def join(self, pid=0, dirs=None):
        self.fs.join(pid, list(self.fs.dirs.values()) if dirs is None else dirs)

    def procs(self):
        return self.fs.procs()

    def destroy(self):
        err = None
        if not self.owned:
            return  # nothing of ours: never another container's unit of the same name
        try:
            self.sd.stop(self.unit)
        except ConchError as e:
            err = e
        self.fs.destroy()
        if err is not None:
            raise err

    @property
    def freezer_files(self):
        return self.fs.freezer_files

    def freeze(self):
        self.fs.freeze()

    def thaw(self):
        self.fs.thaw()

    def set_devices(self, rules):
        self.fs.set_devices(rules)

    def apply(self, res, update=False):
        if update:
            self.sd.set_properties(self.unit, properties(res, None, self.fs.version == 2))
        self.fs.apply(res, update)

    def stats(self):
        return self.fs.stats()

    def oom_watch(self):
        return self.fs.oom_watch()

    def kill(self):
        return self.fs.kill() if hasattr(self.fs, "kill") else False
