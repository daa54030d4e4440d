"""JSON through the interpreter's C accelerator, without the json package.

`import json` costs about 5 ms here, most of it `re` (json.decoder compiles
regular expressions at import) and enum. conch reads config.json and
parses config.json on every start, so it talks to `_json`'s C scanner directly
(loaded on the first parse), minus the Python around it; it writes JSON itself,
as Go does (runc's output).
Only a decode error imports json.decoder (to build its message); that path
is never taken by a valid file.
"""

_WS = " \t\n\r"
_scan = None


def __getattr__(name):
    """JSONError, made on first use (a class statement costs 0.15M instructions and
    only a failing parse needs it)."""
    if name != "JSONError":
        raise AttributeError(f"module 'conch.jsonlite' has no attribute '{name}'")

    class JSONError(ValueError):
        pass

    JSONError.__qualname__ = "JSONError"
    globals()["JSONError"] = JSONError
    return JSONError


def _error(msg):
    return (globals().get("JSONError") or __getattr__("JSONError"))(msg)


def _parse_constant(name):
    raise _error(f"{name} is not valid JSON")


def _scanner():
    global _scan
    import _json  # a dlopen: 0.4M instructions, paid by the commands that parse
    ctx = type(_json)("conch.jsonlite.ctx")  # the attributes the C scanner reads
    ctx.strict, ctx.object_hook, ctx.object_pairs_hook = True, None, None
    ctx.parse_float, ctx.parse_int, ctx.parse_constant, ctx.memo = float, int, \
        _parse_constant, None
    _scan = _json.make_scanner(ctx)
    return _scan


def _line_col(s, pos):
    line = s.count("\n", 0, pos) + 1
    col = pos - (s.rfind("\n", 0, pos) + 1) + 1
    return line, col


def loads(s):
    """Parse a JSON document (str or bytes); raise JSONError with line and column."""
    if isinstance(s, (bytes, bytearray)):
        try:
            s = s.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _error(f"not UTF-8: {e.reason} at byte {e.start}") from None
    scan = _scan or _scanner()
    n = len(s)
    i = 0
    while i < n and s[i] in _WS:
        i += 1
    try:
        try:
            obj, end = scan(s, i)
        except SystemError:
            # The C scanner builds its error from json.decoder.JSONDecodeError,
            # looked up in sys.modules only: load it, then scan again for the message.
            import json.decoder  # noqa: F401  (error path only)
            obj, end = scan(s, i)
    except StopIteration as e:
        line, col = _line_col(s, e.value)
        raise _error(f"expecting a value at line {line} column {col}") from None
    except ValueError as e:  # json.decoder.JSONDecodeError
        msg = getattr(e, "msg", str(e))
        pos = getattr(e, "pos", None)
        if pos is None:
            raise _error(msg) from None
        line, col = _line_col(s, pos)
        raise _error(f"{msg.lower()} at line {line} column {col}") from None
    while end < n and s[end] in _WS:
        end += 1
    if end != n:
        line, col = _line_col(s, end)
        raise _error(f"extra data at line {line} column {col}")
    return obj


# --- encoding, as Go's encoding/json writes (runc's output) --------------------------
# In Python, not _json's encoder: conch writes small documents (state, list, hooks'
# state), where the dlopen of _json would cost more than the encoding. Strings are
# escaped as Go escapes them: the short forms \" \\ \n \r \t, every other control
# character as \u00XX, <, > and & as \u003c, \u003e, \u0026 (Go's HTML escaping, on
# by default), U+2028 and U+2029 as \u2028 and \u2029, and a byte that is not UTF-8
# (a lone surrogate, after a surrogateescape decoding) as \ufffd. Maps are written
# in their dicts' order: sort a dict that stands for a Go map (Go sorts map keys).

# a literal (a comprehension building it cost 0.1M instructions per command)
_ESC = {0: '\\u0000', 1: '\\u0001', 2: '\\u0002', 3: '\\u0003', 4: '\\u0004', 5: '\\u0005',
        6: '\\u0006', 7: '\\u0007', 8: '\\u0008', 9: '\\t', 10: '\\n', 11: '\\u000b',
        12: '\\u000c', 13: '\\r', 14: '\\u000e', 15: '\\u000f', 16: '\\u0010',
        17: '\\u0011', 18: '\\u0012', 19: '\\u0013', 20: '\\u0014', 21: '\\u0015',
        22: '\\u0016', 23: '\\u0017', 24: '\\u0018', 25: '\\u0019', 26: '\\u001a',
        27: '\\u001b', 28: '\\u001c', 29: '\\u001d', 30: '\\u001e', 31: '\\u001f',
        34: '\\"', 38: '\\u0026', 60: '\\u003c', 62: '\\u003e', 92: '\\\\',
        8232: '\\u2028', 8233: '\\u2029'}


def _str(s):
    s = s.translate(_ESC)
    if not s.isascii():
        s = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in s)
    return '"' + s + '"'


def _scalar(o):
    if o is None:
        return "null"
    if o is True:
        return "true"
    if o is False:
        return "false"
    if isinstance(o, str):
        return _str(o)
    if isinstance(o, int):
        return int.__repr__(o)
    if isinstance(o, float):
        if o != o or o in (float("inf"), float("-inf")):
            raise ValueError(f"json: unsupported value: {o!r}")
        return str(int(o)) if o.is_integer() and abs(o) < 1e21 else float.__repr__(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _compact(o):
    if isinstance(o, dict):
        return "{" + ",".join(_str(k) + ":" + _compact(v) for k, v in o.items()) + "}"
    if isinstance(o, (list, tuple)):
        return "[" + ",".join(_compact(v) for v in o) + "]"
    return _scalar(o)


def dumps(obj):
    """Compact JSON (no spaces), UTF-8 text, as Go's json.Marshal writes it."""
    return _compact(obj)


def dumps_indent(obj, indent="  ", _level=0):
    """Indented JSON, as Go's json.MarshalIndent(v, "", indent) (runc's `state`)."""
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        pad = "\n" + indent * (_level + 1)
        parts = [pad + _str(k) + ": " + dumps_indent(v, indent, _level + 1)
                 for k, v in obj.items()]
        return "{" + ",".join(parts) + "\n" + indent * _level + "}"
    if isinstance(obj, (list, tuple)):
        if not obj:
            return "[]"
        pad = "\n" + indent * (_level + 1)
        parts = [pad + dumps_indent(v, indent, _level + 1) for v in obj]
        return "[" + ",".join(parts) + "\n" + indent * _level + "]"
    return _scalar(obj)
