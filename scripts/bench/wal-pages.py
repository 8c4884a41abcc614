#!/usr/bin/env python3
"""Which b-trees a SQLite write load dirtied, from a copy of its WAL file.

Usage: wal-pages.py DB WALCOPY [REQUESTS]
DB is the database after the load (checkpointed, so that its pages map to their b-trees through
the dbstat table); WALCOPY is a copy of its -wal taken before the last connection closed (closing
checkpoints and deletes the WAL). Prints, per table or index, the WAL frames (pages written at
commit) and the distinct pages (what a checkpoint copies), per request when REQUESTS is given.
Only the frames of the WAL's current generation (its header's salts) count.
"""
import collections, sqlite3, struct, sys

db, wal = sys.argv[1], sys.argv[2]
requests = int(sys.argv[3]) if len(sys.argv) > 3 else 0
data = open(wal, "rb").read()
magic, version, page_size, seq, salt1, salt2 = struct.unpack(">IIIIII", data[:24])
frames, commits, pos = [], 0, 32
while pos + 24 + page_size <= len(data):
    pgno, size_after, s1, s2 = struct.unpack(">IIII", data[pos:pos + 16])
    if (s1, s2) != (salt1, salt2):
        break
    frames.append(pgno)
    commits += size_after != 0
    pos += 24 + page_size
owner = {}
con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
for name, pageno in con.execute("SELECT name, pageno FROM dbstat"):
    owner[pageno] = name
count, distinct = collections.Counter(), collections.defaultdict(set)
for p in frames:
    name = owner.get(p, "(free or new)")
    count[name] += 1
    distinct[name].add(p)
per = (lambda n: f"{n / requests:8.2f}") if requests else (lambda n: f"{n:8d}")
print(f"{len(frames)} frames in {commits} commits; {len(set(frames))} distinct pages" +
      (f"; per request: {len(frames) / requests:.2f} frames, {len(set(frames)) / requests:.2f} distinct pages" if requests else ""))
print(f"{'b-tree':40} {'frames':>8} {'distinct':>8}")
for name, n in count.most_common():
    print(f"{name:40} {per(n)} {per(len(distinct[name]))}")
