"""JSON through the interpreter's C accelerator, without the json package.

`import json` costs about 5 ms here, most of it `re` (json.decoder compiles
regular expressions at import) and enum. conch reads config.json and
state.json on every start, so it talks to `_json` directly: the same C
scanner and encoder the json package uses, minus the Python around them.
Only a decode error imports json.decoder (to build its message); that path
is never taken by a valid file.
"""

import _json

_WS = " \t\n\r"


class JSONError(ValueError):
    pass


class _Ctx:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo = None

    @staticmethod
    def parse_constant(name):
        raise JSONError(f"{name} is not valid JSON")


_scan = _json.make_scanner(_Ctx())


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
            raise JSONError(f"not UTF-8: {e.reason} at byte {e.start}") from None
    n = len(s)
    i = 0
    while i < n and s[i] in _WS:
        i += 1
    try:
        try:
            obj, end = _scan(s, i)
        except SystemError:
            # The C scanner builds its error from json.decoder.JSONDecodeError,
            # looked up in sys.modules only: load it, then scan again for the message.
            import json.decoder  # noqa: F401  (error path only)
            obj, end = _scan(s, i)
    except StopIteration as e:
        line, col = _line_col(s, e.value)
        raise JSONError(f"expecting a value at line {line} column {col}") from None
    except ValueError as e:  # json.decoder.JSONDecodeError
        msg = getattr(e, "msg", str(e))
        pos = getattr(e, "pos", None)
        if pos is None:
            raise JSONError(msg) from None
        line, col = _line_col(s, pos)
        raise JSONError(f"{msg.lower()} at line {line} column {col}") from None
    while end < n and s[end] in _WS:
        end += 1
    if end != n:
        line, col = _line_col(s, end)
        raise JSONError(f"extra data at line {line} column {col}")
    return obj


def _default(o):
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


_enc = _json.encode_basestring_ascii
_compact = _json.make_encoder(None, _default, _json.encode_basestring, None,
                              ":", ",", False, False, False)


def dumps(obj):
    """Compact JSON (no spaces), UTF-8 text, as Go's encoding/json writes it."""
    return "".join(_compact(obj, 0))


def dumps_indent(obj, indent="  ", _level=0):
    """Indented JSON, as runc prints `state` (json.MarshalIndent with two spaces)."""
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        pad = "\n" + indent * (_level + 1)
        parts = [pad + _json.encode_basestring(k) + ": " + dumps_indent(v, indent, _level + 1)
                 for k, v in obj.items()]
        return "{" + ",".join(parts) + "\n" + indent * _level + "}"
    if isinstance(obj, list):
        if not obj:
            return "[]"
        pad = "\n" + indent * (_level + 1)
        parts = [pad + dumps_indent(v, indent, _level + 1) for v in obj]
        return "[" + ",".join(parts) + "\n" + indent * _level + "]"
    return dumps(obj)
