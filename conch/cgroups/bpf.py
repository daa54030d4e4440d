"""The cgroup v2 device controller: an eBPF program of type CGROUP_DEVICE.

cgroup2 has no devices.allow/deny files; the kernel runs the programs attached
to the cgroup (BPF_CGROUP_DEVICE) on every open and mknod of a device node and
denies the access when a program returns 0. conch compiles the container's
device rules (reduced to their effective list, config.device_rules and
common.effective_device_rules, so v1 and v2 agree) into such a program,
loads it with bpf(BPF_PROG_LOAD) and attaches it with BPF_F_ALLOW_MULTI; an
update attaches the new program, then detaches the old ones, so there is no
moment without a filter.

The program reads the context (struct bpf_cgroup_dev_ctx: access_type =
access << 16 | type, major, minor) into registers once, then tests one rule
after the other; the first that matches gives the verdict, else the default.
"""

from .. import _os as os

from .. import syscalls as sc
from ..errors import ConchError

# include/uapi/linux/bpf.h
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_OVERRIDE = 1
BPF_F_ALLOW_MULTI = 2

DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
_ACC = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}

# instruction classes and operations
_LDX_MEM_W = 0x61          # dst = *(u32 *)(src + off)
_ALU32_AND_K = 0x54
_ALU32_RSH_K = 0x74
_ALU32_MOV_X = 0xBC
_ALU64_MOV_K = 0xB7
_JMP32_JEQ_K = 0x16
_JMP32_JNE_K = 0x56
_EXIT = 0x95

R0, R1, R2, R3, R4, R5 = range(6)


def insn(code, dst=0, src=0, off=0, imm=0):
    """One struct bpf_insn: code, dst_reg:4 | src_reg:4, s16 off, s32 imm."""
    return (bytes((code, (src << 4) | dst)) + off.to_bytes(2, "little", signed=True)
            + imm.to_bytes(4, "little", signed=True))


def _imm32(v):
    """A u32 as the s32 the instruction holds (JMP32 compares the low 32 bits)."""
    return v - (1 << 32) if v >= 1 << 31 else v


def access_mask(access):
    m = 0
    for c in access:
        m |= _ACC[c]
    return m


def compile_rules(allow_all, entries):
    """The program (bytes, 8 per instruction) for the effective device list
    (common.effective_device_rules): with allow_all the entries are denies and
    a request is denied when it asks for any of an entry's access (as v1's
    partial match); otherwise they are allows and a request is allowed when an
    entry grants all it asks for."""
    prog = [
        insn(_LDX_MEM_W, R2, R1, 0),          # r2 = access_type
        insn(_ALU32_AND_K, R2, imm=0xFFFF),   # r2 = device type
        insn(_LDX_MEM_W, R3, R1, 0),
        insn(_ALU32_RSH_K, R3, imm=16),       # r3 = access
        insn(_LDX_MEM_W, R4, R1, 4),          # r4 = major
        insn(_LDX_MEM_W, R5, R1, 8),          # r5 = minor
    ]
    verdict = 0 if allow_all else 1
    for (typ, major, minor), access in sorted(entries.items()):
        acc = access_mask(access)
        tests = []  # (code, reg, imm) jumps to the next rule when the rule does not match
        tests.append((_JMP32_JNE_K, R2, DEV_CHAR if typ == "c" else DEV_BLOCK))
        if allow_all:
            if acc != 7:  # a deny matches when the request overlaps its access
                tests.append(("mask", acc, _JMP32_JEQ_K))
        elif acc != 7:  # an allow matches when it covers all of the request
            tests.append(("mask", 7 & ~acc, _JMP32_JNE_K))
        if major >= 0:
            tests.append((_JMP32_JNE_K, R4, _imm32(major)))
        if minor >= 0:
            tests.append((_JMP32_JNE_K, R5, _imm32(minor)))
        block = []
        for t in tests:
            if t[0] == "mask":
                block.append([insn(_ALU32_MOV_X, R1, R3)])
                block.append([insn(_ALU32_AND_K, R1, imm=t[1]), ("jump", t[2], R1, 0)])
            else:
                block.append([("jump", t[0], t[1], t[2])])
        flat = [i for part in block for i in part]
        flat += [insn(_ALU64_MOV_K, R0, imm=verdict), insn(_EXIT)]
        for n, i in enumerate(flat):
            if isinstance(i, tuple):
                _, code, reg, imm = i
                flat[n] = insn(code, reg, off=len(flat) - n - 1, imm=imm)
        prog += flat
    prog += [insn(_ALU64_MOV_K, R0, imm=1 if allow_all else 0), insn(_EXIT)]
    return b"".join(prog)


def _u32(v):
    return v.to_bytes(4, "little")


def _u64(v):
    return v.to_bytes(8, "little")


def load(prog, name=b"conch_dev"):
    """BPF_PROG_LOAD a CGROUP_DEVICE program; returns its fd. On a verifier
    error the message carries the verifier's log."""
    insns = sc.char_array(prog)
    lic = sc.char_array(b"Apache-2.0\0")

    def attempt(log):
        attr = (_u32(BPF_PROG_TYPE_CGROUP_DEVICE) + _u32(len(prog) // 8)
                + _u64(sc.addressof(insns)) + _u64(sc.addressof(lic))
                + _u32(1 if log is not None else 0) + _u32(sc.sizeof(log) if log is not None else 0)
                + _u64(sc.addressof(log) if log is not None else 0)
                + _u32(0) + _u32(0) + name[:15].ljust(16, b"\0") + _u32(0) + _u32(0))
        return sc.bpf(BPF_PROG_LOAD, sc.char_array(attr), "BPF_PROG_LOAD")

    try:
        return attempt(None)
    except OSError as e:
        if e.errno != 22:  # EINVAL: ask the verifier why
            raise ConchError(f"linux.resources.devices: loading the device program: {e}") from None
        log = sc.char_array(65536)
        try:
            return attempt(log)
        except OSError:
            text = bytes(log).split(b"\0", 1)[0].decode(errors="replace").strip()
            raise ConchError("linux.resources.devices: the kernel refused the device program: "
                             + (text.splitlines()[-1] if text else str(e))) from None


def query(cgfd):
    """(attach flags, [program ids]) of the device programs attached to a cgroup."""
    ids = sc.char_array(4 * 64)
    attr = sc.char_array(_u32(cgfd) + _u32(BPF_CGROUP_DEVICE) + _u32(0) + _u32(0)
                         + _u64(sc.addressof(ids)) + _u32(64) + _u32(0) + bytes(16))
    sc.bpf(BPF_PROG_QUERY, attr, "BPF_PROG_QUERY")
    raw = bytes(attr)
    flags = int.from_bytes(raw[12:16], "little")
    count = int.from_bytes(raw[24:28], "little")
    return flags, [int.from_bytes(bytes(ids)[4 * i:4 * i + 4], "little") for i in range(count)]


def _attach_attr(cgfd, progfd, flags):
    return sc.char_array(_u32(cgfd) + _u32(progfd) + _u32(BPF_CGROUP_DEVICE) + _u32(flags)
                         + _u32(0) + bytes(12))


def apply(cgdir, allow_all, entries):
    """Attach the program for these rules to the cgroup directory, replacing
    the device programs attached there before."""
    prog = compile_rules(allow_all, entries)
    cgfd = os.open(cgdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        progfd = load(prog)
        try:
            flags, old = query(cgfd)
            if old and flags != BPF_F_ALLOW_MULTI:
                # a single program attached without ALLOW_MULTI: attaching again replaces it
                sc.bpf(BPF_PROG_ATTACH, _attach_attr(cgfd, progfd, flags), "BPF_PROG_ATTACH")
                return
            sc.bpf(BPF_PROG_ATTACH, _attach_attr(cgfd, progfd, BPF_F_ALLOW_MULTI),
                   "BPF_PROG_ATTACH")
            for pid in old:
                ofd = sc.bpf(BPF_PROG_GET_FD_BY_ID,
                             sc.char_array(_u32(pid) + _u32(0) + _u32(0)), "BPF_PROG_GET_FD_BY_ID")
                try:
                    sc.bpf(BPF_PROG_DETACH, _attach_attr(cgfd, ofd, 0), "BPF_PROG_DETACH")
                finally:
                    os.close(ofd)
        finally:
            os.close(progfd)
    except OSError as e:
        raise ConchError(f"linux.resources.devices: {cgdir}: {e}") from None
    finally:
        os.close(cgfd)


def attached(cgdir):
    """The ids of the device programs attached to a cgroup directory."""
    fd = os.open(cgdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return query(fd)[1]
    finally:
        os.close(fd)


def run(prog, typ, major, minor, access):
    """Interpret the program for one request (for tests: the same verdict the
    kernel gives, without a cgroup). typ "c" or "b", access letters."""
    regs = [0] * 11
    ctx = ((access_mask(access) << 16) | (DEV_CHAR if typ == "c" else DEV_BLOCK),
           major, minor)
    pc = 0
    n = len(prog) // 8
    while pc < n:
        code, regs_b = prog[8 * pc], prog[8 * pc + 1]
        dst, src = regs_b & 0xF, regs_b >> 4
        off = int.from_bytes(prog[8 * pc + 2:8 * pc + 4], "little", signed=True)
        imm = int.from_bytes(prog[8 * pc + 4:8 * pc + 8], "little", signed=True)
        pc += 1
        if code == _LDX_MEM_W:
            regs[dst] = ctx[off // 4]
        elif code == _ALU32_AND_K:
            regs[dst] = regs[dst] & imm & 0xFFFFFFFF
        elif code == _ALU32_RSH_K:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == _ALU32_MOV_X:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == _ALU64_MOV_K:
            regs[dst] = imm
        elif code in (_JMP32_JNE_K, _JMP32_JEQ_K):
            eq = (regs[dst] & 0xFFFFFFFF) == (imm & 0xFFFFFFFF)
            if eq == (code == _JMP32_JEQ_K):
                pc += off
        elif code == _EXIT:
            return regs[R0]
        else:
            raise ValueError(f"unknown instruction {code:#x}")
    raise ValueError("fell off the end of the program")
