# The report of benchmark 3 (bench/vm.sh): reads the VM's serial log (the
# BENCH lines written by bench/vm/init), writes the markdown fragment to
# `frag` and the target rows to `targets`. POSIX awk (mawk runs it).
#
# Variables (awk -v): rt ramp reps rreps prt secs mem len rs llen lrs fails
# ended kbad rdev rdevguest cache qemu icount frag targets xbin.
#
# Every figure is a median over the repetitions of one (geometry, log,
# workload); every ratio is a median of per-repetition ratios between runs
# that were next to each other in time:
#   dmulogd / floor        the dmulogd run / the mean of the floor runs right
#                          before and right after it (same table type);
#   dmulogd / kernel disk  on the real-cost device: the dmulogd run / the
#                          kernel's run right before it (k u k u ...).

function median(name, key,   n, i, j, a, t) {
  n = cnt[name, key]; if (n == 0) return -1
  for (i = 1; i <= n; i++) a[i] = val[name, key, i]
  for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(name, key, v) { cnt[name, key]++; val[name, key, cnt[name, key]] = v }
function medlist(list, n,   i, j, t) {
  if (n == 0) return -1
  for (i = 2; i <= n; i++) { t = list[i]; for (j = i - 1; j >= 1 && list[j] > t; j--) list[j + 1] = list[j]; list[j + 1] = t }
  return (n % 2) ? list[(n + 1) / 2] : (list[n / 2] + list[n / 2 + 1]) / 2
}
function cell(v) { return v < 0 ? "—" : sprintf("%.0f", v) }
function cellf(v, fmt) { return v < 0 ? "—" : sprintf(fmt, v) }
function rcell(r) { return r < 0 ? "—" : sprintf("%.2fx", r) }
function ratio(x, y) { return (x < 0 || y <= 0) ? -1 : x / y }
function wlname(w) { return (substr(w, 1, 1) == "w" ? "randwrite" : "randread") " QD" substr(w, 2) }
function logname(c,   nm) {
  nm = c
  if (nm ~ /^f/) { sub(/^f/, "", nm); return "floor-" nm }
  sub(/^k/, "k-", nm); sub(/^u/, "u-", nm); sub(/^x/, "x-", nm); sub(/diskif$/, "disk-if", nm)
  return nm
}
function geodesc(g) {
  if (g == "std") return sprintf("RAM disks, ordinary bitmap: %d MiB mirror, region %d sectors (%d regions, %d-byte bitmap)", len / 2048, rs, len / rs, int((len / rs + 63) / 64) * 8)
  if (g == "large") return sprintf("RAM disks, large bitmap: %d MiB mirror, region %d sectors (%d regions, %d KiB bitmap)", llen / 2048, lrs, llen / lrs, int((llen / lrs + 63) / 64) * 8 / 1024)
  if (g == "rstd") return sprintf("real-cost log device, ordinary bitmap: %d MiB mirror on dm-zero legs, region %d sectors (%d regions, %d-byte bitmap)", len / 2048, rs, len / rs, int((len / rs + 63) / 64) * 8)
  return sprintf("real-cost log device, large bitmap: %d MiB mirror on dm-zero legs, region %d sectors (%d regions, %d KiB bitmap, written whole by the kernel's disk log on every flush)", llen / 2048, lrs, llen / lrs, int((llen / lrs + 63) / 64) * 8 / 1024)
}
function target(what, r, need, higher,   pct, v) {
  if (r < 0) { printf "| %s | — | %s %.2fx | not measured |\n", what, higher ? ">=" : "<=", need >> targets; return }
  pct = (r / need - 1) * 100
  if (higher) v = (r >= need) ? sprintf("**met** (%.0f%% above the bar)", pct) : sprintf("**missed** (%.0f%% below the bar)", -pct)
  printf "| %s | %.2fx | >= %.2fx | %s |\n", what, r, need, v >> targets
}
# dmulogd (case u) / the floor around it, median over the repetitions.
function floor_ratio(g, u, w,   f, r, n, list, pre, post, fv) {
  f = "f" substr(u, 2); n = 0
  for (r = 1; r <= maxrep; r++) {
    if (!((g, u, w, r) in byrep)) continue
    pre = ((g, f, w, r, "pre") in fl) ? fl[g, f, w, r, "pre"] : -1
    post = ((g, f, w, r, "post") in fl) ? fl[g, f, w, r, "post"] : -1
    fv = (pre > 0 && post > 0) ? (pre + post) / 2 : (pre > 0 ? pre : post)
    if (fv > 0) list[++n] = byrep[g, u, w, r] / fv
  }
  return medlist(list, n)
}
# case c / the kernel's disk log in the same repetition, median.
function pair_ratio(g, c, w,   r, n, list) {
  n = 0
  for (r = 1; r <= maxrep; r++)
    if (((g, c, w, r) in byrep) && ((g, "kdisk", w, r) in byrep) && byrep[g, "kdisk", w, r] > 0)
      list[++n] = byrep[g, c, w, r] / byrep[g, "kdisk", w, r]
  return medlist(list, n)
}
function seen(g, c, w) { return cnt["iops", g SUBSEP c SUBSEP w] > 0 }

/^BENCH / {
  delete f
  for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
  g = f["geo"]; c = f["case"]; w = f["wl"]; r = f["rep"] + 0
  key = g SUBSEP c SUBSEP w
  if (r > maxrep) maxrep = r
  if (!((g, w) in seenwl)) { seenwl[g, w] = 1; wls[g] = wls[g] " " w }
  if (!((g, c) in seenc)) { seenc[g, c] = 1; cases[g] = cases[g] " " c }
  iops = f["iops"] + 0
  add("iops", key, iops)
  if (f["pos"] != "") fl[g, c, w, r, f["pos"]] = iops
  else byrep[g, c, w, r] = iops
  order[g, w] = order[g, w] (order[g, w] == "" ? "" : ", ") substr(c, 1, 1) " " sprintf("%.0f", iops)
  add("clat", key, f["clat"] + 0); add("clat50", key, f["clat50"] + 0); add("clat99", key, f["clat99"] + 0)
  if (f["jif"] > 0) add("idle", key, 100 * f["idlej"] / f["jif"])
  ios = f["ios"] + 0; reqs = f["reqs"] + 0
  if (ios > 0) add("cspio", key, f["ctxt"] / ios)
  if (ios > 0 && reqs > 0) {
    add("rpio", key, reqs / ios)
    if (f["jif"] > 0) { add("cpu", key, 100 * (f["utime"] + f["stime"]) / f["jif"]); add("sys", key, 100 * f["stime"] / f["jif"]) }
    add("usreq", key, f["runns"] / 1000 / reqs)
    add("waitreq", key, f["waitns"] / 1000 / reqs)
    add("vcsreq", key, f["vcs"] / reqs); add("nvcsreq", key, f["nvcs"] / reqs)
    add("slreq", key, f["slices"] / reqs)
    add("syscwio", key, f["syscw"] / ios); add("wkio", key, f["write_bytes"] / 1024 / ios)
  }
  next
}
/^BENCH-SYSCALLS / {
  delete f
  for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
  np++; pg[np] = f["geo"]; pc[np] = f["case"]; pw[np] = f["wl"]; preq[np] = f["reqs"] + 0; pio[np] = f["ios"] + 0
  tot = 0; s = ""
  # the names in descending order of count
  n = 0
  for (k in f) if (k ~ /^sc_/) { n++; nm[n] = k; ct[n] = f[k] + 0; tot += ct[n] }
  for (i = 2; i <= n; i++) { t = ct[i]; tn = nm[i]; for (j = i - 1; j >= 1 && ct[j] < t; j--) { ct[j + 1] = ct[j]; nm[j + 1] = nm[j] } ct[j + 1] = t; nm[j + 1] = tn }
  for (i = 1; i <= n; i++) if (preq[np] > 0) s = s (s == "" ? "" : ", ") substr(nm[i], 4) " " sprintf("%.2f", ct[i] / preq[np])
  ptot[np] = tot; pdetail[np] = s
  next
}

END {
  split("std large rstd rlarge", geos, " ")
  split("w1 w16 r1 r16", allw, " ")
  print "## 3. Real kernel in a VM (fio on dm-mirror)" > frag
  print "" > frag
  printf "%s, TCG, one CPU (emulated: compare ratios within this run only, never absolute IOPS), guest %s; the whole VM run took %s s of host time. ", qemu, mem, secs > frag
  if (icount != "") printf "Guest time is counted in instructions (`-icount %s`: 2^shift ns per emulated instruction while the guest runs, host time only while it is idle, e.g. waiting for the real-cost device), so runs that keep the CPU busy measure emulated work, not how much of the shared host QEMU got: they repeat to within a few per cent, and IOPS are per guest second. ", icount > frag
  else printf "Guest time is host time (no `-icount`): the figures move with the load on the host. " > frag
  printf "fio in the guest: 4 KiB random I/O, direct, libaio, %s s after a %s s ramp, median IOPS over the repetitions (%s on RAM disks, %s on the real-cost device); each run on a freshly created mirror, `nosync`, on a zeroed log device. ", rt, ramp, reps, rreps > frag
  printf "Logs: *k-core*, *k-disk* = the kernel\047s own; *u-core*, *u-disk* = dmulogd; *u-disk-if* = dmulogd disk with `integrated_flush`; *floor-core*, *floor-disk* = the floor (`bench/vm/floor.c`: answers every request at once, every region in sync, no state, no I/O; two system calls per request) with a core / disk table%s.\n", (xbin == "" ? "" : "; *x-…* = the same served by `" xbin "`") > frag
  if (fails > 0) printf "\n**%d fio run(s) or steps failed** (BENCH-FAIL lines in the serial log).\n", fails > frag
  if (ended == 0) printf "\n**The guest did not reach its end** (timeout?): the figures below are partial.\n" > frag
  if (kbad != "") printf "\n**The guest kernel complained:** %s (serial log).\n", kbad > frag

  # ---- the floor
  g = "std"
  print "\n### dmulogd against the floor (RAM disks: legs /dev/ram0, /dev/ram1, log device /dev/ram2)\n" > frag
  printf "%s. The floor runs right before and right after each dmulogd core / disk run, with the same table type; *u / floor* is the median over the repetitions of the dmulogd run / the mean of those two floor runs. Floor IOPS: median of all its runs.\n\n", geodesc(g) > frag
  print "| workload | floor-core IOPS | u-core IOPS | **u-core / floor** | floor-disk IOPS | u-disk IOPS | **u-disk / floor** | floor-core / k-core |" > frag
  print "|---|---:|---:|---:|---:|---:|---:|---:|" > frag
  for (j = 1; j <= 4; j++) {
    w = allw[j]
    rc = floor_ratio(g, "ucore", w); rd = floor_ratio(g, "udisk", w)
    fc = median("iops", g SUBSEP "fcore" SUBSEP w); fd = median("iops", g SUBSEP "fdisk" SUBSEP w)
    if (seen(g, "ucore", w) || seen(g, "udisk", w) || fc >= 0)
      printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", wlname(w), cell(fc), cell(median("iops", g SUBSEP "ucore" SUBSEP w)), rcell(rc),
        cell(fd), cell(median("iops", g SUBSEP "udisk" SUBSEP w)), rcell(rd), rcell(ratio(fc, median("iops", g SUBSEP "kcore" SUBSEP w))) > frag
    target("fio " wlname(w) ": dmulogd core / floor", rc, 0.95, 1)
    target("fio " wlname(w) ": dmulogd disk / floor", rd, substr(w, 1, 1) == "w" ? 0.85 : 0.95, 1)
  }

  # ---- every log on RAM disks
  for (gi = 1; gi <= 2; gi++) {
    g = geos[gi]; if (!(g in wls)) continue
    printf "\n### Every log, %s\n\n", geodesc(g) > frag
    n = split(substr(cases[g], 2), cs, " ")
    hdr = "| workload |"; sep = "|---|"
    for (i = 1; i <= n; i++) { hdr = hdr " " logname(cs[i]) " IOPS |"; sep = sep "---:|" }
    hdr = hdr " u-core / k-core | u-disk / k-disk | u-disk-if / k-disk |"; sep = sep "---:|---:|---:|"
    nx = 0
    for (i = 1; i <= n; i++) if (substr(cs[i], 1, 1) == "x") { nx++; xs[nx] = cs[i]; hdr = hdr " " logname(cs[i]) " / u-" substr(cs[i], 2) " |"; sep = sep "---:|" }
    print hdr > frag; print sep > frag
    m = split(substr(wls[g], 2), ws, " ")
    for (j = 1; j <= m; j++) {
      w = ws[j]; line = "| " wlname(w) " |"
      for (i = 1; i <= n; i++) line = line " " cell(median("iops", g SUBSEP cs[i] SUBSEP w)) " |"
      kc = median("iops", g SUBSEP "kcore" SUBSEP w); kd = median("iops", g SUBSEP "kdisk" SUBSEP w)
      line = line " " rcell(ratio(median("iops", g SUBSEP "ucore" SUBSEP w), kc)) " | " rcell(ratio(median("iops", g SUBSEP "udisk" SUBSEP w), kd)) " | " rcell(ratio(median("iops", g SUBSEP "udiskif" SUBSEP w), kd)) " |"
      for (i = 1; i <= nx; i++) line = line " " rcell(ratio(median("iops", g SUBSEP xs[i] SUBSEP w), median("iops", g SUBSEP "u" substr(xs[i], 2) SUBSEP w))) " |"
      print line > frag
    }
  }

  # ---- the real-cost log device
  if (("rstd" in wls) || ("rlarge" in wls)) {
    printf "\n### Real-cost log device: the kernel\047s disk log against dmulogd\047s\n\n" > frag
    printf "The log device is /dev/vda, a virtio disk on %s, opened by QEMU with `cache=%s`%s; guest: %s. The legs are dm-zero (writes dropped, no cost), so the log\047s own writes and cache flushes set the pace. Within each workload the logs take turns, k u k u ..., and *u / k* is the median over the repetitions of each dmulogd run / the kernel\047s run right before it; the runs column shows any drift.\n", rdev, cache, (cache == "none" ? " (host O_DIRECT, guest write cache flushed to the host file)" : " (the host directory takes no O_DIRECT)"), rdevguest > frag
    for (gi = 3; gi <= 4; gi++) {
      g = geos[gi]; if (!(g in wls)) continue
      printf "\n%s:\n\n", geodesc(g) > frag
      n = split(substr(cases[g], 2), cs, " ")
      hdr = "| workload |"; sep = "|---|"
      for (i = 1; i <= n; i++) { hdr = hdr " " logname(cs[i]) " IOPS |"; sep = sep "---:|" }
      for (i = 1; i <= n; i++) if (cs[i] != "kdisk") { hdr = hdr " **" logname(cs[i]) " / k-disk** |"; sep = sep "---:|" }
      print hdr " runs in order (k = kernel, u = dmulogd) |" > frag; print sep "---|" > frag
      m = split(substr(wls[g], 2), ws, " ")
      for (j = 1; j <= m; j++) {
        w = ws[j]; line = "| " wlname(w) " |"
        for (i = 1; i <= n; i++) line = line " " cell(median("iops", g SUBSEP cs[i] SUBSEP w)) " |"
        for (i = 1; i <= n; i++) if (cs[i] != "kdisk") line = line " " rcell(pair_ratio(g, cs[i], w)) " |"
        print line " " order[g, w] " |" > frag
      }
    }
  }
  for (j = 1; j <= 2; j++) {
    w = allw[j]
    target("fio " wlname(w) ", large bitmap on the real-cost device: dmulogd disk / kernel disk", ("rlarge" in wls) ? pair_ratio("rlarge", "udisk", w) : -1, 1.0, 1)
  }

  # ---- where the time goes
  print "\n### Where the time goes\n" > frag
  print "Medians over the repetitions. fio\047s completion latency (mean, median, 99th percentile). Guest counters over ramp + runtime, I/Os counted on the mirror (its sysfs `stat`): the guest\047s idle share and context switches per I/O (`/proc/stat`). For a log server (dmulogd or the floor): the requests it answered per I/O (its own counter, SIGUSR1), its share of the guest CPU (`/proc/PID/stat`; in the kernel), its time on the CPU per request (`/proc/PID/schedstat`), its voluntary and involuntary context switches per request (`/proc/PID/status`), and the write-family system calls and bytes it sent to storage per I/O (`/proc/PID/io` `syscw`, `write_bytes`; socket calls are not counted there, see the system-call table).\n" > frag
  print "| geometry | log | workload | IOPS | clat µs mean / p50 / p99 | guest idle | guest ctx sw per I/O | requests per I/O | server CPU (in kernel) | server CPU µs per request | vol. / invol. ctx sw per request | writes per I/O | KiB written per I/O |" > frag
  print "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" > frag
  for (gi = 1; gi <= 4; gi++) {
    g = geos[gi]; if (!(g in wls)) continue
    n = split(substr(cases[g], 2), cs, " "); m = split(substr(wls[g], 2), ws, " ")
    for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) {
      key = g SUBSEP cs[i] SUBSEP ws[j]
      if (!cnt["iops", key]) continue
      rp = median("rpio", key); cpu = median("cpu", key)
      printf "| %s | %s | %s | %s | %s / %s / %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", g, logname(cs[i]), wlname(ws[j]), cell(median("iops", key)),
        cell(median("clat", key)), cell(median("clat50", key)), cell(median("clat99", key)),
        cellf(median("idle", key), "%.0f%%"), cellf(median("cspio", key), "%.1f"), cellf(rp, "%.2f"),
        cpu < 0 ? "—" : sprintf("%.0f%% (%.0f%%)", cpu, median("sys", key)), cellf(median("usreq", key), "%.1f"),
        rp < 0 ? "—" : sprintf("%.2f / %.2f", median("vcsreq", key), median("nvcsreq", key)),
        cellf(median("syscwio", key), "%.2f"), cellf(median("wkio", key), "%.1f") > frag
    }
  }

  if (np > 0) {
    printf "\n### System calls per request\n\nUntimed runs of %s s (no ramp), one per server and workload, after the timed ones: the server\047s system calls counted by a tracefs histogram (`raw_syscalls:sys_enter`, keyed by syscall, filtered on its pid), divided by the requests it answered in the same window.\n\n", prt > frag
    print "| geometry | server | workload | requests per I/O | syscalls per request | per request, by call |" > frag
    print "|---|---|---|---:|---:|---|" > frag
    for (i = 1; i <= np; i++)
      printf "| %s | %s | %s | %s | %s | %s |\n", pg[i], logname(pc[i]), wlname(pw[i]), (pio[i] > 0 ? sprintf("%.2f", preq[i] / pio[i]) : "—"),
        (preq[i] > 0 ? sprintf("%.2f", ptot[i] / preq[i]) : "—"), pdetail[i] > frag
  }

  print "\nEvery run (IOPS, in repetition order; floor runs as before/after pairs):\n" > frag
  print "| geometry | log | workload | runs |" > frag
  print "|---|---|---|---|" > frag
  for (gi = 1; gi <= 4; gi++) {
    g = geos[gi]; if (!(g in wls)) continue
    n = split(substr(cases[g], 2), cs, " "); m = split(substr(wls[g], 2), ws, " ")
    for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) {
      c = cs[i]; w = ws[j]; s = ""
      for (r = 1; r <= maxrep; r++) {
        if ((g, c, w, r) in byrep) s = s (s == "" ? "" : ", ") sprintf("%.0f", byrep[g, c, w, r])
        if ((g, c, w, r, "pre") in fl) s = s (s == "" ? "" : ", ") sprintf("%.0f/%.0f", fl[g, c, w, r, "pre"], ((g, c, w, r, "post") in fl) ? fl[g, c, w, r, "post"] : -1)
      }
      if (s != "") printf "| %s | %s | %s | %s |\n", g, logname(c), wlname(w), s > frag
    }
  }
  print "" > frag
}
