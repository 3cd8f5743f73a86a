#!/usr/bin/env python3
"""How long this disk takes to make two 4 KiB pages durable: the floor under every send.

A commit's cost in Missive is at least one fdatasync of the WAL, and the idle targets of
issue 16 are set in fractions of a millisecond, so a round's latency figures are read
beside this one. Two ways a WAL is written: appended (a new or truncated file, where the
sync also commits the file's new size) and rewritten in place (a WAL that restarted from
its beginning). Paced like an idle sender (5 ms apart), in the directory given (default:
the current one, which should be on the disk the data directory uses).

Usage: python3 crates/missive-bench/fsync-latency.py [DIR] [SYNCS]
"""
import os
import sys
import time

PAGE = b"x" * 4096


def measure(directory, preallocate, syncs):
    path = os.path.join(directory, f".fsync-latency-{os.getpid()}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        if preallocate:
            os.write(fd, b"\0" * (4096 * (2 * syncs + 8)))
            os.fsync(fd)
            os.lseek(fd, 0, os.SEEK_SET)
        took = []
        for _ in range(syncs):
            os.write(fd, PAGE)
            os.write(fd, PAGE)
            started = time.perf_counter()
            os.fdatasync(fd)
            took.append((time.perf_counter() - started) * 1000)
            time.sleep(0.005)
    finally:
        os.close(fd)
        os.unlink(path)
    took.sort()
    return {q: round(took[min(len(took) - 1, int(len(took) * q))], 3) for q in (0.5, 0.9, 0.99)}


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "."
    syncs = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    for name, preallocate in (("append", False), ("overwrite", True)) * 2:
        q = measure(directory, preallocate, syncs)
        print(f"{name:9} fdatasync p50 {q[0.5]:.3f} ms  p90 {q[0.9]:.3f} ms  p99 {q[0.99]:.3f} ms")


if __name__ == "__main__":
    main()
