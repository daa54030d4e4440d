"""The sealed exec trampoline: the container's process is never exec'd by python.

CVE-2019-5736 for a Python runtime: the process that execs the container's
program is conch's init (or exec helper), whose /proc/self/exe is the host's
python3. If the program is a script whose interpreter is /proc/self/exe (or a
symlink to it), the kernel resolves that in the exec'ing process and runs the
host's python3 in the container; any process of the container can then open
its /proc/PID/exe, the host file on the host's writable mount, and rewrite it
once no python runs (ETXTBSY is all that stops it meanwhile).
Non-dumpability does not help: the process opening /proc/self/exe is itself.

So the init does not exec the program. It execs this 440-byte static x86_64
program from a sealed memfd (no write, grow, shrink or new seals: it is
nobody's to change), and the trampoline execs the program. At that moment
/proc/self/exe is the memfd: a script naming /proc/self/exe as its interpreter
gets the trampoline back, which refuses to run as an interpreter (exit 126).
The memfd is made before any seccomp filter is loaded; the init execs it with
execveat (fexecve), the trampoline uses fcntl, execve, writev and exit_group.

The trampoline's argv: "@conch@" (a marker: anything else is a misuse), the
number of the fd that reports exec errors, the error's prefix, the path to
exec, then the program's own argv. It marks the report fd close-on-exec and
execs; if execve fails it writes the prefix, a NUL and the errno in three
digits on the report fd (sync.error_text turns that into the message) and
exits 127. Its source (GNU as, intel syntax; assembled with as --64 and
objcopy -O binary -j .text), so that the bytes below can be checked:

    ehdr:  ELF64 header: ET_EXEC, EM_X86_64, entry base+start, one PT_LOAD
    phdr:  PT_LOAD, PF_R|PF_X, offset 0, vaddr 0x400000, filesz=memsz=end-ehdr
    start:
      mov r12, [rsp]                ; argc
      lea r13, [rsp + 8]            ; argv
      lea r14, [r13 + r12*8 + 8]    ; envp
      cmp r12, 5
      jb misuse
      mov rax, [r13]
      mov rax, [rax]
      movabs rbx, 0x004068636e6f6340 ; "@conch@\0"
      cmp rax, rbx
      jne misuse
      mov rsi, [r13 + 8]            ; the report fd, in decimal
      xor r15d, r15d
    digit:
      movzx eax, byte ptr [rsi]
      test al, al
      jz parsed
      sub eax, 0x30
      imul r15, r15, 10
      add r15, rax
      inc rsi
      jmp digit
    parsed:
      mov edi, r15d                 ; fcntl(fd, F_SETFD, FD_CLOEXEC)
      mov esi, 2
      mov edx, 1
      mov eax, 72
      syscall
      mov rdi, [r13 + 24]           ; execve(argv[3], &argv[4], envp)
      lea rsi, [r13 + 32]
      mov rdx, r14
      mov eax, 59
      syscall
      neg rax                       ; errno, as three digits at [rsp]
      sub rsp, 64
      mov ecx, 10
      xor edx, edx
      div rcx
      add dl, 0x30
      mov [rsp + 2], dl
      xor edx, edx
      div rcx
      add dl, 0x30
      mov [rsp + 1], dl
      xor edx, edx
      div rcx
      add dl, 0x30
      mov [rsp], dl
      mov rsi, [r13 + 16]           ; the prefix, with its NUL
      xor ecx, ecx
    len:
      cmp byte ptr [rsi + rcx], 0
      je counted
      inc rcx
      jmp len
    counted:
      inc rcx
      mov [rsp + 16], rsi           ; struct iovec[2]
      mov [rsp + 24], rcx
      mov [rsp + 32], rsp
      mov qword ptr [rsp + 40], 3
      mov edi, r15d                 ; writev(fd, iov, 2)
      lea rsi, [rsp + 16]
      mov edx, 2
      mov eax, 20
      syscall
      mov edi, 127
      jmp quit
    misuse:
      mov edi, 2                    ; write(2, msg, len)
      lea rsi, [rip + msg]
      mov edx, msgend - msg
      mov eax, 1
      syscall
      mov edi, 126
    quit:
      mov eax, 231                  ; exit_group
      syscall
    msg:
      .ascii "conch: the exec trampoline is not an interpreter\n"

Other architectures have no trampoline yet: the init execs the program itself
there (docs/SECURITY.md says so).
"""

from . import _os as os
from . import syscalls as sc

MARK = "@conch@"

_X86_64 = bytes.fromhex(
    "7f454c4602010100000000000000000002003e00010000007800400000000000400000000000000000000000"
    "0000000000000000400038000100000000000000010000000500000000000000000000000000400000000000"
    "0000400000000000b801000000000000b80100000000000000100000000000004c8b24244c8d6c24084f8d74"
    "e5084983fc050f82d3000000498b4500488b0048bb40636f6e636840004839d80f85b9000000498b75084531"
    "ff0fb60684c0740f83e8304d6bff0a4901c748ffc6ebea4489ffbe02000000ba01000000b8480000000f0549"
    "8b7d18498d75204c89f2b83b0000000f0548f7d84883ec40b90a00000031d248f7f180c2308854240231d248"
    "f7f180c2308854240131d248f7f180c230881424498b751031c9803c0e00740548ffc1ebf548ffc148897424"
    "1048894c2418488964242048c7442428030000004489ff488d742410ba02000000b8140000000f05bf7f0000"
    "00eb1dbf02000000488d3518000000ba31000000b8010000000f05bf7e000000b8e70000000f05636f6e6368"
    "3a207468652065786563207472616d706f6c696e65206973206e6f7420616e20696e7465727072657465720a"
)

_fd = []


def prepare(machine=None):
    """Make the sealed memfd (once per process); None where there is no trampoline."""
    if _fd:
        return _fd[0]
    if (machine or os.uname().machine) != "x86_64":
        return None
    try:
        try:
            fd = os.memfd_create("conch-exec", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING | 0x10)
        except OSError:  # MFD_EXEC is Linux 6.3
            fd = os.memfd_create("conch-exec", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.write(fd, _X86_64)
        # F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE
        sc.fcntl(fd, sc.F_ADD_SEALS, 0x1 | 0x2 | 0x4 | 0x8)
    except OSError:
        return None
    _fd.append(fd)
    return fd


def fd():
    return _fd[0] if _fd else None


def argv(report_fd, prefix, exe, args):
    return [MARK, str(report_fd), prefix, exe] + list(args)
