"""The launcher's boot code: conch's modules from conch.bundle (see conch/_bundle.py).

Run by the launcher as `__conch_boot__` with `bundle` (the file's path) and
`index` ({name: (is_package, offset, size)}) bound; kept apart from the builder
so that the launcher unmarshals only this. The package's directory is next to
the bundle.
"""

import sys

if __name__ == "__conch_boot__":  # run by the launcher: `bundle`, `index` bound
    import builtins
    from marshal import loads as _loads
    from posix import O_CLOEXEC, O_RDONLY, close as _close, fstat as _fstat, open as _open, \
        pread as _pread, stat as _stat

    _modules = sys.modules
    _std_import = builtins.__import__
    _Module = type(sys)

    # The bundle is opened for each module and closed at once: a descriptor kept
    # open would take a number that --preserve-fds and --pass-fd read as the
    # caller's. A process that has entered a container's mount namespace or root
    # would find at the bundle's path whatever the container put there: the file
    # opened must be the one the launcher read (its inode and device), else the
    # import fails (conch imports everything it needs before it enters a container).
    _id = _stat(bundle)[1:3]  # noqa: F821 (st_ino, st_dev)

    def _code(name):
        _, offset, size = index[name]  # noqa: F821
        fd = _open(bundle, O_RDONLY | O_CLOEXEC)  # noqa: F821
        try:
            if _fstat(fd)[1:3] != _id:
                raise ImportError(f"{name}: {bundle} is not the file conch started "  # noqa: F821
                                  "from (in a container's root?)", name=name)
            return _loads(_pread(fd, size, offset))
        finally:
            _close(fd)

    _libdir = bundle.rpartition("/")[0]  # noqa: F821

    def _path(name, is_pkg):
        return f"{_libdir}/{name.replace('.', '/')}{'/__init__.py' if is_pkg else '.py'}"

    def _load(name):
        """Import one module of the bundle (its parent package first), as importlib
        does: in sys.modules while it runs, removed if it fails, then bound as an
        attribute of its parent."""
        parent, _, child = name.rpartition(".")
        if parent and parent not in _modules:
            _load(parent)
            if name in _modules:  # the parent's code imported it
                return _modules[name]
        is_pkg = index[name][0]  # noqa: F821
        path = _path(name, is_pkg)
        module = _Module(name)
        module.__file__ = path
        module.__loader__ = None
        module.__spec__ = None
        if is_pkg:
            module.__package__ = name
            module.__path__ = [path.rpartition("/")[0]]
        else:
            module.__package__ = parent
        _modules[name] = module
        try:
            exec(_code(name), module.__dict__)
        except BaseException:
            _modules.pop(name, None)
            raise
        module = _modules[name]  # a module may have replaced itself
        if parent:
            setattr(_modules[parent], child, module)
        return module

    if "importtime" in sys._xoptions:  # -X importtime lists conch's modules too
        from time import perf_counter_ns as _ns
        _load_timed, _depth, _nested = _load, [0], [0]

        def _load(name):  # noqa: F811
            t0, outer = _ns(), _nested[0]
            _nested[0] = 0
            _depth[0] += 1
            try:
                return _load_timed(name)
            finally:
                _depth[0] -= 1
                us = (_ns() - t0) // 1000
                sys.stderr.write(f"import time: {us - _nested[0]:>9} | {us:>10} | "
                                 f"{'  ' * _depth[0]}{name}\n")
                _nested[0] = outer + us

    def _import(name, globals=None, locals=None, fromlist=(), level=0):
        """builtins.__import__ for conch's modules; anything else goes to the
        interpreter's. importlib's machinery (module locks, finders, specs) costs
        about 0.1M instructions a module; this, a dict lookup and the unmarshal."""
        if level:
            package = globals.get("__package__") if globals else None
            if not package:
                return _std_import(name, globals, locals, fromlist, level)
            base = package.rsplit(".", level - 1)[0] if level > 1 else package
            full = f"{base}.{name}" if name else base
        else:
            full = name
        if full not in index or level and not fromlist:  # noqa: F821
            return _std_import(name, globals, locals, fromlist, level)
        module = _modules.get(full) or _load(full)
        if fromlist:
            for item in fromlist:
                if item != "*" and f"{full}.{item}" in index \
                        and f"{full}.{item}" not in _modules:  # noqa: F821
                    _load(f"{full}.{item}")
            return module
        return _modules[full.partition(".")[0]]  # `import a.b` binds a

    # importlib's own protocol (importlib.import_module, runpy) bypasses __import__:
    # it finds conch's modules in the package directory, as without a bundle
    sys.path.append(_libdir)
    builtins.__import__ = _import
    if not globals().get("BOOT_ONLY"):
        from conch.cli import main
        main()
