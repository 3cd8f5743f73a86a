#!/usr/bin/env python3
"""Which tables and indexes each commit writes: the WAL's frames, per commit, by B-tree.

A commit's cost on the writer (one `pwrite` for each frame's header and one for its page,
then the sync's writeback of every page) grows with the pages it changes, so this is the
measure of the send path's storage work that does not depend on the machine's speed. It
reads the WAL of a SQLite data directory — a live server's is fine: the database and its
WAL are copied first and only the copy is opened — keeps the frames of the current WAL
generation (the header's salts), splits them at commit frames, and names each page through
SQLite's `dbstat` table. A page is named by what it holds at the end, so a page freed and
reused within the window may be named after its new owner; the counts are per commit, each
page once per commit however often it was written.

Usage: python3 crates/missive-bench/wal-frames.py DATA_DIR [LAST_COMMITS]
(LAST_COMMITS: the commits counted, default 300 — run it while a scenario is sending, e.g.
`missive-bench send --concurrency 1`, with DATA_DIR from the server's `--data`.)
"""
import collections
import os
import shutil
import sqlite3
import statistics
import struct
import sys
import tempfile

WAL_HEADER = 32
FRAME_HEADER = 24
# Copied in this order: the WAL before the database (see `main`).
FILES = ("missive.db-wal", "missive.db")


def commits(wal):
    """The page numbers of each commit in the WAL's current generation, oldest first."""
    if len(wal) < WAL_HEADER:
        return []
    page_size = struct.unpack(">I", wal[8:12])[0]
    salts = wal[16:24]
    out, current, off = [], [], WAL_HEADER
    while off + FRAME_HEADER + page_size <= len(wal):
        page, db_size = struct.unpack(">II", wal[off : off + 8])
        if wal[off + 8 : off + 16] != salts:
            break
        current.append(page)
        if db_size:
            out.append(current)
            current = []
        off += FRAME_HEADER + page_size
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    data, last = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 300
    for name in FILES:
        if not os.path.isfile(os.path.join(data, name)):
            sys.exit(f"{data}: no {name} (give the server's --data directory while it runs)")
    with tempfile.TemporaryDirectory() as tmp:
        # The WAL before the database: a checkpoint between the two copies then only means
        # the copied database already holds some of the copied frames, which is harmless.
        try:
            for name in FILES:
                shutil.copyfile(os.path.join(data, name), os.path.join(tmp, name))
        except FileNotFoundError as e:
            # The last connection to close deletes the WAL: the server stopped meanwhile.
            sys.exit(f"{e.filename} went away while being copied (the server stopped?)")
        with open(os.path.join(tmp, "missive.db-wal"), "rb") as f:
            found = commits(f.read())[-last:]
        if not found:
            sys.exit("no commits in the WAL's current generation")
        conn = sqlite3.connect(os.path.join(tmp, "missive.db"))
        owner = dict((page, name) for name, page in conn.execute("SELECT name, pageno FROM dbstat"))
        conn.close()
    # dbstat names page 1 after the schema table whose root it is; what a commit changes
    # there is almost always the file header (the database's size in pages).
    owner[1] = "page 1 (the header)"
    pages = [set(c) for c in found]
    sizes = [len(p) for p in pages]
    print(f"{len(found)} commits: pages per commit p50 {statistics.median(sizes)}, "
          f"mean {statistics.mean(sizes):.2f}, max {max(sizes)}")
    per_tree = collections.Counter()
    for p in pages:
        for page in p:
            per_tree[owner.get(page, "(page past the copied database's end)")] += 1
    for name, n in per_tree.most_common():
        print(f"  {name:40s} {n / len(found):6.2f} pages per commit")


if __name__ == "__main__":
    main()
