#!/usr/bin/env python3
"""Minimal QMP client for the benchmarks: connects to a QEMU monitor
socket, negotiates capabilities, runs each JSON command given as an
argument and prints each reply's "return" value as one JSON line.
Exit status 1 if QEMU answers a command with an error.

With --balloon-wait BYTES as the only command it instead sets QEMU's
balloon target to BYTES of guest memory and polls query-balloon every
5 ms on the same connection until "actual" reaches it, then prints the
seconds from sending the target to seeing it reached (QEMU rate-limits
its BALLOON_CHANGE event to one a second, too coarse to time with)."""
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
    if cmds[:1] == ["--balloon-wait"]:
        target = int(cmds[1])
        t0 = time.monotonic()
        run({"execute": "balloon", "arguments": {"value": target}})
        while run({"execute": "query-balloon"})["return"]["actual"] > target:
            time.sleep(0.005)
        print(f"{time.monotonic() - t0:.6f}", flush=True)
        return
    for c in cmds:
        reply = run(json.loads(c))
        if "error" in reply:
            print(json.dumps(reply["error"]), file=sys.stderr)
            sys.exit(1)
        print(json.dumps(reply["return"]), flush=True)


if __name__ == "__main__":
    main()
