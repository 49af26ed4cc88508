#!/usr/bin/env python3
"""proto/schema.json against proto/examples/*.jsonl: the schema is valid
JSON Schema; every server line is a response or an event; every request
the server accepted is a valid request; every request it refused as
malformed (EPROTO, ENOSYS, an invalid path) is not.
Usage: schema.py PROTO_DIR. TAP on stdout; SKIP without python3-jsonschema."""
import glob
import json
import os
import sys

try:
    import jsonschema
except ImportError:
    print("1..0 # SKIP python3-jsonschema is not installed")
    sys.exit(0)

proto = sys.argv[1]
n = 0
failed = 0


def ok(cond, desc):
    global n, failed
    n += 1
    if not cond:
        failed += 1
    print(("ok" if cond else "not ok") + f" {n} - {desc}")


with open(os.path.join(proto, "schema.json")) as f:
    schema = json.load(f)
cls = jsonschema.validators.validator_for(schema)
try:
    cls.check_schema(schema)
    ok(True, "schema.json is a valid JSON Schema")
except jsonschema.SchemaError as e:
    ok(False, f"schema.json is a valid JSON Schema: {e.message}")
    print(f"1..{n}")
    sys.exit(1)

defs = schema["$defs"]


def valid(obj, name):
    sub = dict(schema, **{"$ref": f"#/$defs/{name}"})
    sub.pop("oneOf", None)
    return cls(sub).is_valid(obj)


for path in sorted(glob.glob(os.path.join(proto, "examples", "*.jsonl"))):
    base = os.path.basename(path)
    pending = []
    problems = []
    for lineno, line in enumerate(open(path), 1):
        line = line.rstrip("\n")
        if line.startswith("> "):
            pending.append((lineno, line[2:]))
            continue
        if not line.startswith("< "):
            continue
        obj = json.loads(line[2:])
        if "event" in obj:
            if not valid(obj, "event"):
                problems.append(f"{lineno}: not a valid event")
            continue
        if not valid(obj, "response"):
            problems.append(f"{lineno}: not a valid response")
        reqno, text = pending.pop(0)
        try:
            req = json.loads(text)
            req_valid = valid(req, "request")
        except ValueError:
            req_valid = False
        err = obj.get("error")
        malformed = err is not None and (
            err["code"] in ("EPROTO", "ENOSYS")
            or err["message"].startswith("invalid path"))
        if malformed and req_valid:
            problems.append(f"{reqno}: the schema accepts a request the server refuses")
        if not malformed and not req_valid:
            problems.append(f"{reqno}: the schema refuses a request the server accepts")
    ok(not problems and not pending, f"{base}: every line agrees with the schema")
    for p in problems:
        print(f"#   {base}:{p}")

print(f"1..{n}")
sys.exit(1 if failed else 0)
