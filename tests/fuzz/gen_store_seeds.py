#!/usr/bin/env python3
"""Writes the seed corpus for tests/fuzz/fuzz_store.c.

Usage: gen_store_seeds.py [OUTDIR]   (default: corpus/store next to this file)

A seed is the byte stream one client sends on the control socket
(proto/viod-store.md). There is one seed per proto/examples/*.jsonl file
(its "> " lines), then edge cases against the tree fuzz_store.c builds
(/devices/b0 and b1, balloons; r0; ctl/plug and ctl/reset). Seeds are
deterministic: rerunning the script rewrites identical files. Files not
named ex-* or seed-* (crash reproducers saved by hand, repro-*) are left
alone.
"""
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "proto", "examples")
LINE_MAX = 16384
PATH_MAX = 256
VALUE_MAX = 4096
WATCHES_MAX = 64


def req(i, op, **members):
    """One request line (bytes, newline included)."""
    obj = {"id": i, "op": op}
    obj.update(members)
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


def lines(*items):
    return b"".join(x if isinstance(x, bytes) else x.encode() for x in items)


def examples():
    s = {}
    for path in sorted(glob.glob(os.path.join(EXAMPLES, "*.jsonl"))):
        out = bytearray()
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(b"> "):
                    out += line[2:].rstrip(b"\n") + b"\n"
        # The examples' tree has balloon0 where the fuzzer's has b0.
        out = bytes(out).replace(b"/balloon0", b"/b0").replace(b"/rng0", b"/r0")
        name = os.path.basename(path)[:-len(".jsonl")]
        s["ex-" + name] = out
    return s


def seeds():
    s = {}
    b0 = "/devices/b0"

    # Framing: CRLF, blank and whitespace-only lines, unterminated last line.
    s["seed-framing"] = lines(
        req(1, "read", path=b0 + "/type").replace(b"\n", b"\r\n"),
        "\n", "   \t\n", "\r\n", "\x0b\x0c\n",
        "  " + req(2, "list", path="/").decode(),
        '{"id":3,"op":"read","path":"/devices/b0/target"}')
    s["seed-empty-lines"] = b"\n" * 64
    s["seed-unterminated"] = b'{"id":1,"op":"list","path":"/devices"'

    # Line length: exactly at the limit (newline included), then over it.
    head = b'{"id":1,"op":"read","path":"/devices/b0/type"'
    at = head + b" " * (LINE_MAX - len(head) - 2) + b"}\n"
    assert len(at) == LINE_MAX
    s["seed-line-at-limit"] = at + req(2, "read", path=b0 + "/actual")
    over = head + b" " * (LINE_MAX - len(head) - 1) + b"}\n"
    assert len(over) == LINE_MAX + 1
    s["seed-line-over-limit"] = req(1, "list", path="/") + over + req(3, "list", path="/")
    s["seed-line-over-unterminated"] = req(1, "list", path="/") + b"x" * (LINE_MAX + 1)

    # Values and paths at and over their limits.
    s["seed-value-limits"] = lines(
        req(1, "write", path=b0 + "/label", value="v" * VALUE_MAX),
        req(2, "write", path=b0 + "/label", value="v" * (VALUE_MAX + 1)),
        req(3, "write", path=b0 + "/label", value="\u00e9" * 64),
        req(4, "write", path=b0 + "/label", value="\u00e9" * 65),
        req(5, "read", path=b0 + "/label"))
    long_ok = "/" + "/".join(["a" * 15] * 16)
    assert len(long_ok) == PATH_MAX
    s["seed-path-limits"] = lines(
        req(1, "read", path=long_ok), req(2, "watch", path=long_ok),
        req(3, "read", path=long_ok + "b"), req(4, "list", path="/"),
        req(5, "read", path="/."), req(6, "read", path="/..."),
        req(7, "read", path="/.a"), req(8, "list", path="//"),
        req(9, "read", path=""), req(10, "read", path="/devices/b0/"))

    # Nested JSON: deep arrays, deep objects as members, as a whole line.
    depth = 4000
    s["seed-nested-array"] = b"[" * depth + b"]" * depth + b"\n" + req(1, "list", path="/")
    deep_obj = b'{"a":' * 1200 + b"1" + b"}" * 1200
    s["seed-nested-member"] = lines(
        b'{"id":1,"op":"read","path":' + deep_obj + b"}\n",
        b'{"id":2,"op":"read","path":"/","x":' + b"[" * 2000 + b"]" * 2000 + b"}\n",
        b"[" * 6000 + b"\n",
        req(3, "list", path="/"))

    # Numbers: huge, negative, fractional, exponent, beyond 2^53 and 2^63.
    s["seed-numbers"] = lines(
        b'{"id":9007199254740991,"op":"list","path":"/"}\n',
        b'{"id":9007199254740993,"op":"list","path":"/"}\n',
        b'{"id":9223372036854775807,"op":"list","path":"/"}\n',
        b'{"id":9223372036854775808,"op":"list","path":"/"}\n',
        b'{"id":99999999999999999999999999999999,"op":"list","path":"/"}\n',
        b'{"id":-1,"op":"list","path":"/"}\n',
        b'{"id":-9223372036854775808,"op":"list","path":"/"}\n',
        b'{"id":1.5,"op":"list","path":"/"}\n',
        b'{"id":1e400,"op":"list","path":"/"}\n',
        b'{"id":1e2,"op":"list","path":"/"}\n',
        b'{"id":-0,"op":"list","path":"/"}\n',
        b'{"id":true,"op":"list","path":"/"}\n',
        b'{"id":null,"op":"list","path":"/"}\n',
        b'{"id":[1],"op":"list","path":"/"}\n',
        b'{"id":01,"op":"list","path":"/"}\n',
        b'{"id":0x10,"op":"list","path":"/"}\n',
        b'{"id":2,"op":"unwatch","watch":18446744073709551616}\n',
        b'{"id":3,"op":"write","path":"/devices/b0/target","value":"18446744073709551616"}\n',
        b'{"id":4,"op":"write","path":"/devices/b0/target","value":"-0"}\n',
        b'{"id":5,"op":"write","path":"/devices/b0/target","value":"+5"}\n',
        b'{"id":6,"op":"write","path":"/devices/b0/target","value":" 5"}\n',
        b'{"id":7,"op":"write","path":"/devices/b0/target","value":"0x10"}\n',
        b'{"id":8,"op":"write","path":"/devices/b0/memory/target","value":"1048577"}\n')

    # Unicode escapes: BMP, pairs, lone surrogates, in names, values, paths.
    s["seed-unicode-escapes"] = lines(
        b'{"id":1,"op":"read","path":"\\/devices\\/b0\\/type"}\n',
        b'{"id":2,"op":"read","path":"/devices/b\\u0030/type"}\n',
        b'{"id":3,"op":"write","path":"/devices/b0/label","value":"\\u00e9\\ud83d\\ude00"}\n',
        b'{"id":4,"op":"write","path":"/devices/b0/label","value":"\\ud800"}\n',
        b'{"id":5,"op":"write","path":"/devices/b0/label","value":"\\udc00\\ud800x"}\n',
        b'{"id":6,"op":"write","path":"/devices/b0/label","value":"\\uDBFF\\uDFFF"}\n',
        b'{"id":7,"op":"write","path":"/devices/b0/label","value":"\\u001f\\b\\f\\n\\r\\t\\"\\\\"}\n',
        b'{"id":8,"op":"read","path":"/devices/b0/label"}\n',
        b'{"id":9,"op":"r\\u0065ad","path":"/devices/b0/label"}\n',
        b'{"id":10,"op":"read","path":"/","\\u00e9\\u00e9":1}\n',
        b'{"id":11,"op":"read","path":"/","' + "\u00e9".encode() * 40 + b'":1}\n',
        b'{"id":12,"op":"read","path":"\\uffff"}\n',
        b'{"id":13,"op":"write","path":"/devices/b0/label","value":"\\u12"}\n')

    # NUL: escaped (in every member, and after an escaped backslash), raw.
    s["seed-nul"] = lines(
        b'{"id":1,"op":"read","path":"/devices/b0\\u0000/type"}\n',
        b'{"id":2,"op":"write","path":"/devices/b0/label","value":"a\\u0000b"}\n',
        b'{"id":3,"op":"read\\u0000","path":"/"}\n',
        b'{"id":4,"op":"read","path":"/","\\u0000":1}\n',
        b'{"id":5,"op":"write","path":"/devices/b0/label","value":"\\\\u0000"}\n',
        b'{"id":6,"op":"write","path":"/devices/b0/label","value":"\\\\\\u0000"}\n',
        b'{"id":7,"op":"read","path":"/devices/b0/label"}\n',
        b'{"id":8,"op":"read","path":"/\x00"}\n',
        b"\x00\n",
        b'{"id":9,"op":"read","path":"/devices/b0/label"}\x00\n',
        b'{"id":10,"op":"list","path":"/"}\n')

    # Control characters echoed back (found by this fuzzer: json-glib wrote
    # U+001F raw, which is not JSON): in a member name the server quotes,
    # in a value GLib's number parser quotes, in a stored value; raw too.
    s["seed-control-chars"] = lines(
        *[b'{"id":%d,"op":"read","path":"/","\\u%04x":1}\n' % (c, c) for c in range(1, 32)],
        b'{"id":32,"op":"write","path":"/devices/b0/target","value":"\\u001f"}\n',
        b'{"id":33,"op":"write","path":"/devices/b0/label","value":"\\u001e\\u001f\\u007f"}\n',
        b'{"id":34,"op":"watch","path":"/devices/b0/label"}\n',
        b'{"id":35,"op":"write","path":"/devices/b0/label","value":"a\x1fb\x01"}\n',
        b'{"id":36,"op":"read","path":"/devices/b0/label"}\n')

    # Surrogate escapes (found by this fuzzer: json-glib turned a lone one
    # into bytes that are not UTF-8, which error messages quoted back, and
    # leaked memory for a high one followed by another escape).
    s["seed-surrogates"] = lines(
        b'{"id":1,"op":"write","path":"/devices/b0/target","value":"\\ud800x"}\n',
        b'{"id":2,"op":"read","path":"/","\\udc00y":1}\n',
        b'{"id":3,"op":"write","path":"/devices/b0/label","value":"\\ud800\\u0041"}\n',
        b'{"id":4,"op":"write","path":"/devices/b0/label","value":"\\ud800\\ud800"}\n',
        b'{"id":5,"op":"write","path":"/devices/b0/label","value":"\\ud83d\\ude00"}\n',
        b'{"id":6,"op":"write","path":"/devices/b0/label","value":"\\uD800\\uDC00"}\n',
        b'{"id":7,"op":"write","path":"/devices/b0/label","value":"\\\\ud800"}\n',
        b'{"id":8,"op":"write","path":"/devices/b0/label","value":"\\ud800\\n"}\n',
        b'{"id":9,"op":"write","path":"/devices/b0/label","value":"\\udbff\\udfff"}\n',
        b'{"id":10,"op":"read","path":"/devices/b0/label"}\n')

    # Escapes JSON does not have (found by this fuzzer: json-glib read
    # "\\udc0%" as a lone surrogate, "\\0" and "\\u0%41" as NUL, "\\377" as a
    # byte that is not UTF-8, and any other letter as itself).
    escapes = [r'\q', r'\0', r'\00', r'\101', r'\377', r'\x41', r'\U0041', r'\u004',
               r'\udc0%', r'\u12g4', r'\u0%41', r'\u000%', r'\u 041', r'\u+041', r'\a',
               r'\v', "\\'", r'\/', r'\"', r'\\', r'\b\f\n\r\t', r'\\u0000',
               r'\\\u0041', r'\uD834\uDD1E']
    s["seed-escapes"] = lines(
        *[('{"id":%d,"op":"read","path":"/","k%s":1}\n' % (i, e)) for i, e in
          enumerate(escapes, 1)],
        b'{"id":30,"op":"write","path":"/devices/b0/target","value":"1\\377"}\n',
        b'{"id":31,"op":"write","path":"/devices/b0/label","value":"a\\0b"}\n',
        b'{"id":32,"op":"read","path":"/devices/b0/label"}\n',
        b'{"id":33,"op":"list","path":"/"}\\\n')

    # More than one value on a line (found by this fuzzer: json-glib parsed
    # them all and leaked all but the first, so memory grew per line; its
    # single-quoted strings and comments could hide the second from a scan).
    s["seed-two-values"] = lines(
        b'{"id":1,"op":"list","path":"/"} {"id":2,"op":"list","path":"/"}\n',
        b'{} {}\n', b'[] {}\n', b'1 2\n', b'"a" "b"\n', b'true{}\n', b'{}[]\n',
        b'{"a":"}"} {"b":"\\"}"}\n', b'var a = {"id":3}\n',
        b'{"id":4,"op":"list","path":"/"} /* c */\n',
        b'{"id":5,"op":"list","path":"/"}\t \r\n',
        b'  {"id":6,"op":"list","path":"/"}  \n',
        b'{"id":7,"op":"list","path":"/"}}\n', b']\n', b'{"id":8,"op":"list","path":"/"\n',
        b'"unterminated\n',
        # json-glib's extensions, which could hide a second value.
        b'{"id":10,"op":"list","path":"/","x":\'"\'} {"y":"\'"}\n',
        b'{"id":11,"op":"list","path":"/"/* } {"id":12} */}\n',
        b'{"id":13,"op":"list","path":"/"} // {"id":14}\n',
        b"{'id':15,'op':'list','path':'/'}\n",
        b'{"id":16,"op":"list","path":"/","x":"\'/*#"}\n',
        b'{"id":9,"op":"list","path":"/"}\n')

    # Bytes that are not UTF-8: in strings, member names, outside strings.
    s["seed-not-utf8"] = lines(
        b'{"id":1,"op":"write","path":"/devices/b0/label","value":"\xff\xfe"}\n',
        b'{"id":2,"op":"write","path":"/devices/b0/label","value":"\xc0\x80"}\n',
        b'{"id":3,"op":"write","path":"/devices/b0/label","value":"\xed\xa0\x80"}\n',
        b'{"id":4,"op":"write","path":"/devices/b0/target","value":"1\xff"}\n',
        b'{"id":5,"op":"write","path":"/devices/b0/unplug","value":"\xe9"}\n',
        b'{"id":6,"op":"read","path":"/devices/b0/\xe9"}\n',
        b'{"id":7,"op":"read","path":"/","\xff":1}\n',
        b'{"id":8,"op":"\xff","path":"/"}\n',
        b'{"id":9,"op":"read","path":"/"}\xff\n',
        b'\xef\xbb\xbf{"id":10,"op":"list","path":"/"}\n',
        b'{"id":11,"op":"write","path":"/devices/b0/label","value":"\xf4\x90\x80\x80"}\n',
        b'{"id":12,"op":"read","path":"/devices/b0/label"}\n')

    # Members: duplicates, extras, wrong types, every op's shape.
    s["seed-members"] = lines(
        b'{"id":1,"id":2,"op":"list","path":"/"}\n',
        b'{"id":3,"op":"list","op":"read","path":"/devices/b0/type"}\n',
        b'{"id":4,"op":"list","path":"/","path":"/devices"}\n',
        b'{"id":5,"op":"read","path":["/"]}\n',
        b'{"id":6,"op":"read","path":null}\n',
        b'{"id":7,"op":"write","path":"/devices/b0/label","value":{}}\n',
        b'{"id":8,"op":"unwatch","watch":"1"}\n',
        b'{"id":9,"op":"unwatch","watch":1,"path":"/"}\n',
        b'{"id":10,"op":"unwatch"}\n',
        b'{"id":11,"op":"watch","path":"/","value":"x"}\n',
        b'{"id":12,"op":"list","path":"/","' + b"m" * 33 + b'":1}\n',
        b'{"id":13,"op":5}\n',
        b'{"id":14,"op":""}\n',
        b'{}\n', b'""\n', b'1\n', b'null\n', b'{"id":15}garbage\n',
        b'{"id":16,"op":"list","path":"/"} {"id":17}\n',
        b'{"id":18,"op":"list","path":"/"}\n')

    # Watches: more than the limit, then writes that fire them all.
    w = [req(i, "watch", path="/" if i % 2 else b0) for i in range(1, WATCHES_MAX + 3)]
    s["seed-many-watches"] = lines(
        *w, req(100, "write", path=b0 + "/target", value="1000"),
        req(101, "unwatch", watch=1), req(102, "watch", path=b0 + "/target"),
        req(103, "write", path=b0 + "/stats-interval", value="0"),
        req(104, "write", path=b0 + "/stats-interval", value="7"))

    # Unwatch of ids never given, given and gone, and odd ones.
    s["seed-unwatch"] = lines(
        req(1, "unwatch", watch=0), req(2, "unwatch", watch=1),
        req(3, "watch", path=b0), req(4, "unwatch", watch=1),
        req(5, "unwatch", watch=1), req(6, "unwatch", watch=99999),
        b'{"id":7,"op":"unwatch","watch":-1}\n',
        b'{"id":8,"op":"unwatch","watch":4294967297}\n',
        b'{"id":9,"op":"unwatch","watch":1.0}\n',
        req(10, "watch", path="/devices/b9"), req(11, "unwatch", watch=2))

    # Writes: every writable key, good and bad values, the EIO paths.
    s["seed-writes"] = lines(
        req(1, "watch", path="/devices"),
        req(2, "write", path=b0 + "/target", value="65536"),
        req(3, "write", path=b0 + "/target", value="65536"),
        req(4, "write", path=b0 + "/target", value="262145"),
        req(5, "write", path=b0 + "/memory/target", value="524288"),
        req(6, "write", path=b0 + "/stats-interval", value="86401"),
        req(7, "write", path=b0 + "/actual", value="1"),
        req(8, "write", path=b0 + "/stats", value="1"),
        req(9, "write", path=b0 + "/nothing", value="1"),
        req(10, "write", path="/devices/b1/target", value="5"),
        req(11, "write", path="/devices/b1/target", value="x"),
        req(12, "write", path="/devices/b1/memory/target", value="5"),
        req(13, "write", path="/", value="5"),
        req(14, "write", path="/devices/r0/type", value="balloon"),
        req(15, "write", path=b0 + "/label", value="\u263a"))

    # Devices come and go under watches: unplug from inside its callback,
    # plug again, reset the whole tree (which removes "/" and rebuilds it).
    s["seed-plug-cycle"] = lines(
        req(1, "watch", path="/"), req(2, "watch", path=b0 + "/unplug"),
        req(3, "write", path=b0 + "/unplug", value="1"),
        req(4, "write", path=b0 + "/unplug", value="1"),
        req(5, "read", path=b0 + "/type"),
        req(6, "write", path="/devices/ctl/plug", value="b0"),
        req(7, "write", path="/devices/ctl/plug", value="b0"),
        req(8, "write", path="/devices/ctl/plug", value="b7"),
        req(9, "write", path=b0 + "/target", value="3"),
        req(10, "write", path="/devices/ctl/reset", value="1"),
        req(11, "list", path="/devices"),
        req(12, "write", path="/devices/ctl/reset", value="1"),
        req(13, "unwatch", watch=1), req(14, "unwatch", watch=2),
        req(15, "write", path="/devices/ctl/reset", value="2"))

    # A request split over many reads is still one request.
    s["seed-pipelined"] = b"".join(req(i, "read", path=b0 + "/target") for i in range(150))
    return s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus", "store")
    os.makedirs(out, exist_ok=True)
    all_seeds = examples()
    all_seeds.update(seeds())
    for name in os.listdir(out):
        if (name.startswith("ex-") or name.startswith("seed-")) and name not in all_seeds:
            os.unlink(os.path.join(out, name))
    for name, data in sorted(all_seeds.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print("%d seeds in %s" % (len(all_seeds), out))


if __name__ == "__main__":
    main()
