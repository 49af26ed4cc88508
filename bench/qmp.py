#!/usr/bin/env python3
"""Minimal QMP client for the benchmarks: connects to a QEMU monitor
socket, negotiates capabilities, runs each JSON command given as an
argument and prints each reply's "return" value as one JSON line.
Exit status 1 if QEMU answers a command with an error."""
import json
import socket
import sys
import time


def main():
    path, cmds = sys.argv[1], sys.argv[2:]
    for _ in range(100):
        try:
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(path)
            break
        except OSError:
            time.sleep(0.05)
    else:
        sys.exit(f"qmp: cannot connect to {path}")
    f = sock.makefile("rw")
    f.readline()  # greeting

    def run(cmd):
        f.write(json.dumps(cmd) + "\n")
        f.flush()
        while True:
            reply = json.loads(f.readline())
            if "return" in reply or "error" in reply:
                return reply

    run({"execute": "qmp_capabilities"})
    for c in cmds:
        reply = run(json.loads(c))
        if "error" in reply:
            print(json.dumps(reply["error"]), file=sys.stderr)
            sys.exit(1)
        print(json.dumps(reply["return"]), flush=True)


if __name__ == "__main__":
    main()
