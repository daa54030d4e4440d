"""conch.jsonlite: JSON in and out without the json package, written as Go writes it."""

import json

import pytest

from conch import jsonlite

DOCS = [{}, [], {"a": 1, "b": [1, 2, {"c": None}], "d": True, "e": False, "f": -3},
        {"x": [], "y": {}, "z": [[]]}, "plain", 0, 12345678901234567890, [1.5, -0.25],
        {"nested": {"deeper": {"list": ["a", "b"]}}}]


@pytest.mark.parametrize("doc", DOCS)
def test_output_parses_back_and_is_laid_out_as_go_and_python_agree(doc):
    assert json.loads(jsonlite.dumps(doc)) == doc
    assert json.loads(jsonlite.dumps_indent(doc)) == doc
    # for these values Go's json.Marshal/MarshalIndent and Python's json agree on layout
    assert jsonlite.dumps(doc) == json.dumps(doc, separators=(",", ":"))
    assert jsonlite.dumps_indent(doc) == json.dumps(doc, indent=2)
    assert jsonlite.dumps_indent(doc, "\t") == json.dumps(doc, indent="\t")


@pytest.mark.parametrize("text,go", [
    ('a"b\\c', r'"a\"b\\c"'),
    ("line\nfeed\rtab\t", r'"line\nfeed\rtab\t"'),
    ("\x00\x01\x08\x0c\x1f", r'"\u0000\u0001\u0008\u000c\u001f"'),  # Go: no \b, \f
    ("<a href='x'>&</a>", r'"\u003ca href=' + "'x'" + r'\u003e\u0026\u003c/a\u003e"'),
    ("é ü 中", '"é ü 中"'),  # UTF-8 as is
    ("\u2028\u2029", r'"\u2028\u2029"'),
    (b"caf\xff".decode("utf-8", "surrogateescape"), '"caf\ufffd"'),  # a byte not UTF-8
])
def test_strings_are_escaped_as_go_escapes_them(text, go):
    assert jsonlite.dumps(text) == go
    assert jsonlite.dumps({text: 1}) == "{" + go + ":1}"


def test_floats_as_go_prints_them():
    assert jsonlite.dumps([2.0, 0.5, 1e21, 1e-7]) == "[2,0.5,1e+21,1e-07]"
    with pytest.raises(ValueError):
        jsonlite.dumps(float("nan"))
    with pytest.raises(TypeError):
        jsonlite.dumps({1, 2})


@pytest.mark.parametrize("text,msg", [
    ('{"a": }', "expecting a value at line 1 column 7"),
    ("[1] x", "extra data at line 1 column 5"),
    ("", "expecting a value at line 1 column 1"),
    ('{"a": NaN}', "NaN is not valid JSON"),
    (b'"\xff"', "not UTF-8: invalid start byte at byte 1"),
])
def test_parse_errors_say_where(text, msg):
    with pytest.raises(jsonlite.JSONError) as e:
        jsonlite.loads(text)
    assert str(e.value) == msg
    assert isinstance(e.value, ValueError)


def test_parse():
    assert jsonlite.loads(' {"a": [1, 2.5, "x", null, true]}\n') == {"a": [1, 2.5, "x", None, True]}
    assert jsonlite.loads(b'{"k": "\\u00e9"}') == {"k": "é"}
