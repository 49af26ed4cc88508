#!/usr/bin/env python3
"""Kill a vhost-user back-end (SIGKILL) at a moment it has requests in flight.

Usage: kill-in-flight.py PID NUM_QUEUES TIMEOUT_SECONDS

Watches the back-end's inflight region (vhost-user.rst, "Inflight I/O
tracking", split rings), the memfd that viod names "viod-inflight", read
through /proc/PID/fd: a QueueRegionSplit per queue (features u64, version
u16, desc_num u16, last_batch_head u16, used_idx u16, then desc_num
DescStateSplit of 16 bytes whose first byte is the inflight flag), queue
regions of equal size. When some request is marked in flight it stops the
process (SIGSTOP), looks again once every thread has stopped, so that what
it counts cannot move, and kills it if requests are still in flight;
otherwise it lets it go on (SIGCONT) and watches again.

Prints "in-flight N heads Q:H,..." (N >= 1) after the kill. After the
timeout, or at once if no queue's region is set up (version 0: the
back-end does not track its ring), it kills anyway and prints "in-flight 0
(each queue's version and desc_num)", exit status 3. Exit status 2 if the
process or its region cannot be found (the process is left alone).
"""
import mmap
import os
import signal
import struct
import sys
import time


def region_fd(pid):
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/memfd:viod-inflight"):
                return f"/proc/{pid}/fd/{fd}"
        except OSError:
            pass
    return None


def in_flight(region, nqueues):
    """(queue, head) pairs marked in flight in queues of version 1."""
    stride = len(region) // nqueues
    found = []
    for q in range(nqueues):
        base = q * stride
        _, version, desc_num = struct.unpack_from("<QHH", region, base)
        if version != 1 or 16 + 16 * desc_num > stride:
            continue
        for head in range(desc_num):
            if region[base + 16 + 16 * head]:
                found.append((q, head))
    return found


def header(region, nqueues, q):
    """Queue q's (version, desc_num)."""
    return struct.unpack_from("<QHH", region, q * (len(region) // nqueues))[1:]


def all_stopped(pid):
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # the thread is gone
        if state not in ("T", "t"):
            return False
    return True


def main():
    if len(sys.argv) != 4:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    pid, nqueues, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    deadline = time.monotonic() + timeout
    path = None
    while path is None and time.monotonic() < deadline:
        try:
            path = region_fd(pid)
        except OSError:
            print(f"no process {pid}", file=sys.stderr)
            return 2
        if path is None:
            time.sleep(0.01)
    if path is None:
        print(f"process {pid} has no viod-inflight memfd", file=sys.stderr)
        return 2
    with open(path, "rb") as f:
        region = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    # No queue set up (version 0) on a running device: nothing will ever
    # be marked in flight; kill at once.
    tracking = any(header(region, nqueues, q)[0] for q in range(nqueues))
    while tracking and time.monotonic() < deadline:
        if not in_flight(region, nqueues):
            # Requests stay in flight for a millisecond or more (an I/O, an
            # fdatasync): a poll every 0.2 ms sees most of them.
            time.sleep(0.0002)
            continue
        os.kill(pid, signal.SIGSTOP)
        while not all_stopped(pid):
            time.sleep(0.0005)
        found = in_flight(region, nqueues)
        if found:
            os.kill(pid, signal.SIGKILL)
            heads = ",".join(f"{q}:{h}" for q, h in found)
            print(f"in-flight {len(found)} heads {heads}")
            return 0
        os.kill(pid, signal.SIGCONT)
    os.kill(pid, signal.SIGKILL)
    # Say whether the back-end tracked anything at all: version 0 means
    # it never set the region up (e.g. a ring larger than the region's
    # queue size, which it cannot track).
    state = " ".join("q%d: version %d desc_num %d" % ((q,) + header(region, nqueues, q))
                     for q in range(nqueues))
    print(f"in-flight 0 ({state})")
    return 3


if __name__ == "__main__":
    sys.exit(main())
