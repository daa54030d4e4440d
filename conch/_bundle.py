"""Import conch's modules from one pre-compiled file (the launcher's fast path).

A normal import of a module costs a directory listing (cached), a stat of the
source, an open, fstat and read of its .pyc, a header check and the unmarshal,
all driven by importlib's Python code, and a command imports 8-20 of conch's
modules. `tools/install.sh` therefore writes `conch.bundle` next to the
package, named for the interpreter that compiled it
(`conch.<sys.implementation.cache_tag>.bundle`, e.g. conch.cpython-311.bundle):

    b"<n>\n"                                    the length of the next part
    marshal((conch/_boot.py's code, index))     index: {name: (is_package,
                                                offset, size)}
    the marshalled code of every module         at offset (from the file's start)

The launcher opens the bundle of the running interpreter, reads the first line
and the index, and executes conch/_boot.py's code as `__conch_boot__` with
`bundle` (the path) and `index` bound; with no such file (not installed, or
another Python) it imports from the package directory as usual. The boot code
replaces `builtins.__import__` with a function that imports conch's modules
itself (importlib's machinery costs 0.1M instructions a module) and hands every
other import to the interpreter's; importlib's own protocol
(`importlib.import_module`) finds them in the package directory. A module's code is read with one pread when it is
imported, so a command pays only for the modules it uses. `__file__` and
`__path__` point at the installed sources (next to the bundle), so tracebacks
show their lines. The code is compiled without docstrings (optimize=2; conch
has no asserts and reads no __doc__): less to unmarshal.

Build it with `python3 -m conch._bundle LIBDIR` (tools/install.sh does).
"""

import sys


def build(libdir, out):
    """Compile every module of the conch package under `libdir` into `out`."""
    import marshal
    import os

    codes = {}
    pkgdir = os.path.join(libdir, "conch")
    for dirpath, dirnames, files in os.walk(pkgdir):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        rel = os.path.relpath(dirpath, libdir).replace(os.sep, ".")
        for f in sorted(files):
            if not f.endswith(".py"):
                continue
            path = os.path.join(dirpath, f)
            is_pkg = f == "__init__.py"
            name = rel if is_pkg else f"{rel}.{f[:-3]}"
            with open(path, "rb") as src:
                code = compile(src.read(), path, "exec", dont_inherit=True, optimize=2)
            codes[name] = (is_pkg, marshal.dumps(code))
    boot_path = os.path.join(pkgdir, "_boot.py")
    with open(boot_path, "rb") as src:
        boot = compile(src.read(), boot_path, "exec", dont_inherit=True, optimize=2)

    def layout(base):
        index, off = {}, base
        for name, (is_pkg, blob) in codes.items():
            index[name] = (is_pkg, off, len(blob))
            off += len(blob)
        return index

    # the offsets depend on the header's length, which depends on the offsets' digits
    base = 0
    while True:
        head = marshal.dumps((boot, layout(base)))
        first = f"{len(head)}\n".encode()
        if len(first) + len(head) == base:
            break
        base = len(first) + len(head)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(first + head + b"".join(blob for _, blob in codes.values()))
    os.replace(tmp, out)
    return len(codes), base + sum(len(b) for _, b in codes.values())


def bundle_path(libdir):
    return f"{libdir}/conch.{sys.implementation.cache_tag}.bundle"


if __name__ == "__main__":
    out = bundle_path(sys.argv[1])
    n, size = build(sys.argv[1], out)
    print(f"{out}: {n} modules, {size} bytes")
