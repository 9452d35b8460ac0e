#!/usr/bin/env python3
"""Host half of the clear-ordering check (boot `clearorder`).

    check_clear_order.py WLOG_IMAGE SERIAL_LOG

The guest (tests/vm/guest/t-clearorder.sh) ran a dm-mirror whose two legs
and log device are slices of one dm-log-writes device, and left one
dm-log-writes log per case on the virtio disk WLOG_IMAGE.  Its serial log
has one line per case:

    clear-order-geometry case=C kind=K wlog=SECTOR entries=N legs=A,B
        leglen=L log=G rs=RS nreg=R

dm-log-writes (drivers/md/dm-log-writes.c) records a write only once a
FLUSH has covered it (or at once for FUA), so its log is the order in
which data reaches stable media.  Format: a super block at the log's byte
0 (magic u64, version u64, nr_entries u64, sectorsize u32, little-endian),
then, from byte `sectorsize` on, nr_entries entries: one sectorsize block
holding {sector, nr_sectors, flags, data_len} (u64 each; sector and
nr_sectors in units of sectorsize; flags FLUSH 1, FUA 2, DISCARD 4, MARK 8,
METADATA 16) followed, for a write, by its nr_sectors blocks of data.

The rule checked, the one dm-log.c keeps (disk_flush calls the mirror's
flush callback, an empty PREFLUSH to every leg, before it writes a bitmap
with newly set clean bits): every write to the log device that turns a
region's bitmap bit from 0 (dirty) to 1 (clean) must come after a FLUSH
that follows the last non-FUA write to either leg within that region.
Otherwise a power cut may keep the bitmap and lose the leg write.

Prints `PASS <case>` or `FAIL <case>: <reason>` per case (the harness
counts them) and indented notes.  Standard library only.
"""

import re
import struct
import sys

MAGIC = 0x6A736677736872
FLUSH, FUA, DISCARD, MARK = 1, 2, 4, 8
LOG_OFFSET = 1024  # dm-log.c: the bitmap starts 2 sectors into the log device
MIN_CHECKED = 20  # fewer clean transitions after a leg write: nothing was tested


def read_entries(img, base):
    """Yields (index, sector, nr_sectors, flags, data) in log order."""
    img.seek(base)
    magic, version, nr, ss = struct.unpack("<QQQI", img.read(28))
    if magic != MAGIC or version != 1:
        raise ValueError("no dm-log-writes super block at byte %d (magic %#x, version %d)" % (base, magic, version))
    if ss < 512 or ss & (ss - 1):
        raise ValueError("bad sector size %d in the super block" % ss)
    pos = base + ss
    for i in range(nr):
        img.seek(pos)
        hdr = img.read(ss)
        if len(hdr) < ss:
            raise ValueError("the write log ends inside entry %d of %d" % (i, nr))
        sector, nsec, flags, dlen = struct.unpack("<QQQQ", hdr[:32])
        pos += ss
        data = b""
        if flags & MARK:
            data = hdr[32 : 32 + dlen]
        elif not flags & DISCARD and nsec:
            data = img.read(nsec * ss)
            if len(data) < nsec * ss:
                raise ValueError("the write log ends inside the data of entry %d" % i)
            pos += nsec * ss
        # in bytes from here on: the entry's device range
        yield i, sector * ss, nsec * ss, flags, data


def check_case(img_path, g):
    """Returns (ok, reason, notes) for one geometry line's case."""
    sb = 512
    legs = [int(x) * sb for x in g["legs"].split(",")]
    leglen = int(g["leglen"]) * sb
    logs = int(g["log"]) * sb
    rs = int(g["rs"]) * sb
    nreg = int(g["nreg"])
    nbytes = (nreg + 7) // 8
    bm_lo, bm_hi = logs + LOG_OFFSET, logs + LOG_OFFSET + nbytes

    bitmap = bytearray(nbytes)  # the guest zeroed the log device: all dirty
    last_write = {}  # region -> index of the last non-FUA leg write in it
    last_flush = -1
    n = {"entries": 0, "flushes": 0, "leg_writes": 0, "bitmap_writes": 0, "rising": 0, "checked": 0}
    bad = []
    last_mark = None
    with open(img_path, "rb") as img:
        for i, off, ln, flags, data in read_entries(img, int(g["wlog"]) * sb):
            n["entries"] += 1
            if flags & MARK:
                last_mark = data.split(b"\0")[0].decode(errors="replace")
                continue
            if flags & FLUSH:
                # a PREFLUSH: the flush comes before the bio's own data
                last_flush = i
                n["flushes"] += 1
            if flags & DISCARD or not ln:
                continue
            end = off + ln
            for leg in legs:
                lo, hi = max(off, leg), min(end, leg + leglen)
                if lo < hi:
                    n["leg_writes"] += 1
                    if not flags & FUA:
                        for r in range((lo - leg) // rs, (hi - 1 - leg) // rs + 1):
                            last_write[r] = i
            lo, hi = max(off, bm_lo), min(end, bm_hi)
            if lo >= hi:
                continue
            n["bitmap_writes"] += 1
            for b in range(lo, hi):
                new = data[b - off]
                k = b - bm_lo
                rising = new & ~bitmap[k] & 0xFF
                bitmap[k] = new
                while rising:
                    bit = rising & -rising
                    rising ^= bit
                    r = k * 8 + bit.bit_length() - 1
                    if r >= nreg:
                        continue
                    n["rising"] += 1
                    w = last_write.get(r)
                    if w is None:
                        continue
                    n["checked"] += 1
                    if last_flush < w:
                        bad.append((r, w, i, last_flush))
    want = int(g["entries"])
    notes = [
        "%(entries)d log entries, %(leg_writes)d leg writes, %(flushes)d FLUSHes, %(bitmap_writes)d bitmap writes, "
        "%(rising)d bits set clean, %(checked)d of them after leg writes in their region" % n,
        "last mark: %r" % last_mark,
    ]
    for r, w, i, f in bad[:5]:
        notes.append(
            "region %d: leg write #%d, then bitmap write #%d sets it clean with no FLUSH in between (last FLUSH #%d)"
            % (r, w, i, f)
        )
    if n["entries"] != want:
        return False, "the guest counted %d log entries, the image holds %d" % (want, n["entries"]), notes
    if last_mark != "dm-log-writes-end":
        return False, "the write log does not end with dm-log-writes' teardown mark: incomplete", notes
    if bad:
        regions = sorted({b[0] for b in bad})
        return (
            False,
            "%d of %d clean bits (%d regions) reached the log device before a FLUSH of the leg writes in their "
            "region (first: region %d)" % (len(bad), n["checked"], len(regions), bad[0][0]),
            notes,
        )
    if n["checked"] < MIN_CHECKED:
        return False, "only %d clean bits followed leg writes in their region: nothing was tested" % n["checked"], notes
    return True, "", notes


def main(argv):
    if len(argv) != 3:
        print("usage: check_clear_order.py WLOG_IMAGE SERIAL_LOG", file=sys.stderr)
        return 2
    img_path, serial = argv[1], argv[2]
    with open(serial, "rb") as f:
        text = f.read().decode(errors="replace").replace("\r", "")
    cases = []
    for line in text.splitlines():
        if line.startswith("clear-order-geometry "):
            cases.append(dict(re.findall(r"(\w+)=(\S+)", line)))
    if not cases:
        print("  clear-order (host): no clear-order-geometry line in the serial log: no case to check")
    rc = 0
    for g in cases:
        c = g.get("case", "?")
        try:
            ok, reason, notes = check_case(img_path, g)
        except (OSError, ValueError, KeyError, struct.error) as e:
            ok, reason, notes = False, "cannot read the write log: %s" % e, []
        for line in notes:
            print("  %s (host): %s" % (c, line))
        if ok:
            print("PASS %s" % c)
        else:
            print("FAIL %s: %s" % (c, reason))
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
