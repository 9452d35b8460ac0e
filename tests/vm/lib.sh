# shellcheck shell=bash
# Real-kernel test plumbing for dmulogd: sourced by run-suite.sh and demo.sh.
#
# What it does (see tests/vm/README.md):
#   vm_arch ARCH        x86_64 (the default, or $VM_ARCH when sourced) or
#                       aarch64: the guest architecture of what follows
#   vm_setup            install missing Debian packages, fetch and unpack the
#                       Debian kernel into the cache, build the cached base
#                       initramfs (busybox, modules, dmsetup + libraries)
#   vm_initrd OUT       base initramfs + the current dmulogd + guest scripts
#   vm_boot NAME TESTS TIMEOUT [qemu args...]
#                       boot the VM once, running the guest tests TESTS
#                       (comma separated), serial log in $VM_LOGDIR/NAME.log
#   vm_check NAME RC [--no-end] PASS-NAMES...
#                       judge one boot from its serial log and exit status
#   vm_disks DIR        three blank virtio disk images for the power-cut
#                       scenario; prints the qemu -drive arguments
#   vm_disk FILE SIZE   one blank (sparse) virtio disk image; prints its
#                       -drive argument
#
# Nothing here is installed on the host except Debian packages; the kernel is
# only unpacked, into ${XDG_CACHE_HOME:-$HOME/.cache}/dmulogd-vm/.  An aarch64
# guest's kernel, busybox-static and dmsetup (with its libraries) are arm64
# .debs fetched with apt-get download against a private arm64 package list
# in that cache (the host's dpkg and apt configuration are left alone), and
# only unpacked too.

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_TOP=$(cd "$VM_DIR/../.." && pwd)
VM_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/dmulogd-vm
VM_LOGDIR=${VM_LOGDIR:-$VM_TOP/target/vm-logs}
# The static binaries under test: VM_DMULOGD (x86_64), VM_DMULOGD_AARCH64.
_VM_DMULOGD_X86_64=${VM_DMULOGD:-$VM_TOP/target/static/dmulogd}
_VM_DMULOGD_AARCH64=${VM_DMULOGD_AARCH64:-$VM_TOP/target/static-aarch64/dmulogd}
# Bump when the layout of the cached base initramfs changes.
VM_BASE_REV=3

# Modules, in load order (the Debian package has no modules.dep); vm_arch
# puts the architecture's own ones first (arm64: dax, built in on amd64).
_VM_MODULES_COMMON="drivers/md/dm-mod drivers/md/dm-log drivers/md/dm-region-hash
  drivers/md/dm-mirror drivers/md/dm-log-userspace drivers/block/brd"
VM_MODULES_OPTIONAL="drivers/md/dm-delay drivers/md/dm-flakey drivers/md/dm-zero drivers/md/dm-log-writes
  drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev
  drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci drivers/block/virtio_blk"

vm_die() { echo "vm: error: $*" >&2; exit 1; }
vm_say() { echo "vm: $*" >&2; }

# vm_arch ARCH: the guest architecture, x86_64 or aarch64.  Sets VM_ARCH,
# VM_DEB_ARCH (Debian's name), VM_QEMU and VM_QEMU_ARGS (machine), VM_CONSOLE,
# VM_TMO_SCALE (factor of the guest tests' watchdog, dmtmoscale=), VM_KCACHE
# (where its kernels are unpacked), VM_MODULES_REQUIRED and VM_DMULOGD.
# aarch64: the `virt` board (PL011 console ttyAMA0, virtio over PCI) with a Cortex-A57,
# emulated (TCG) like the x86_64 guest.
vm_arch() {
  VM_ARCH=$1
  case $1 in
    x86_64)
      VM_DEB_ARCH=amd64 VM_QEMU=qemu-system-x86_64 VM_CONSOLE=ttyS0
      VM_QEMU_ARGS=() VM_TMO_SCALE=1
      VM_KCACHE=$VM_CACHE/kernel VM_DMULOGD=$_VM_DMULOGD_X86_64
      VM_MODULES_REQUIRED=$_VM_MODULES_COMMON ;;
    aarch64)
      VM_DEB_ARCH=arm64 VM_QEMU=qemu-system-aarch64 VM_CONSOLE=ttyAMA0
      # about twice as slow as the x86_64 guest for the same tests
      VM_QEMU_ARGS=(-M virt -cpu cortex-a57) VM_TMO_SCALE=3
      VM_KCACHE=$VM_CACHE/kernel-arm64 VM_DMULOGD=$_VM_DMULOGD_AARCH64
      VM_MODULES_REQUIRED="drivers/dax/dax $_VM_MODULES_COMMON" ;;
    *) vm_die "unknown guest architecture '$1' (x86_64 or aarch64)" ;;
  esac
}

_vm_apt_updated=
_vm_apt_update() {
  [ -n "$_vm_apt_updated" ] && return 0
  vm_say "apt-get update"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null ||
    vm_die "apt-get update failed (no access to Debian's package archive?)"
  _vm_apt_updated=1
}

# Foreign (arm64) packages: apt with the host's sources but a package list
# and state of its own in the cache, so that apt-get download finds arm64
# .debs without `dpkg --add-architecture` on the host (as root: the cache
# is not the _apt user's to write).
_vm_apt_opts() {
  local d=$VM_CACHE/apt-$VM_DEB_ARCH
  printf '%s\n' -o "APT::Architecture=$VM_DEB_ARCH" -o "APT::Architectures::=$VM_DEB_ARCH" \
    -o "Dir::State::Lists=$d/lists" -o "Dir::State::status=$d/status" -o "Dir::Cache=$d/cache" \
    -o APT::Sandbox::User=root
}
_vm_apt_foreign_updated=
_vm_apt_foreign_update() {
  [ -n "$_vm_apt_foreign_updated" ] && return 0
  local d=$VM_CACHE/apt-$VM_DEB_ARCH opts
  if ! mkdir -p "$d/lists/partial" "$d/cache/archives/partial" || ! touch "$d/status"; then
    vm_die "cannot create $d"
  fi
  mapfile -t opts < <(_vm_apt_opts)
  vm_say "apt-get update ($VM_DEB_ARCH package list, in $d)"
  DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" update -qq >/dev/null ||
    vm_die "apt-get update of the $VM_DEB_ARCH package list failed (no access to Debian's package archive?)"
  _vm_apt_foreign_updated=1
}
# The package list of the guest's architecture, updated once per run.
_vm_apt_refresh() {
  if [ "$VM_ARCH" = x86_64 ]; then _vm_apt_update; else _vm_apt_foreign_update; fi
}
# _vm_apt CMD ARGS...: apt-get or apt-cache for the guest's architecture
# (the host's own apt for x86_64); _vm_apt_refresh first.
_vm_apt() {
  local cmd=$1 opts=(); shift
  [ "$VM_ARCH" = x86_64 ] || mapfile -t opts < <(_vm_apt_opts)
  "$cmd" "${opts[@]}" "$@"
}

# Install the Debian packages whose commands are missing.
vm_need_packages() {
  local missing=() ok
  if [ "$VM_ARCH" = x86_64 ]; then
    command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
    # The static busybox: Debian's plain busybox package is dynamic.
    ok=; [ -x /bin/busybox ] && file_is_static /bin/busybox && ok=1
    [ -n "$ok" ] || missing+=(busybox-static)
    command -v dmsetup >/dev/null || [ -x /sbin/dmsetup ] || missing+=(dmsetup)
    # nlpoke, a guest helper built with `gcc -static` (vm_initrd)
    command -v gcc >/dev/null || missing+=(gcc)
    [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(libc6-dev)
  else
    # The guest's busybox and dmsetup are arm64 .debs (vm_fetch_userland).
    command -v qemu-system-aarch64 >/dev/null || missing+=(qemu-system-arm)
    command -v apt-cache >/dev/null || missing+=(apt)
  fi
  command -v cpio >/dev/null || missing+=(cpio)
  command -v gzip >/dev/null || missing+=(gzip)
  command -v dpkg-deb >/dev/null || missing+=(dpkg)
  command -v timeout >/dev/null || missing+=(coreutils)
  command -v ldd >/dev/null || missing+=(libc-bin)
  # host-side checks of some boots (check_clear_order.py)
  command -v python3 >/dev/null || missing+=(python3)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || vm_die "missing packages ${missing[*]} and not root: install them first"
  command -v apt-get >/dev/null || vm_die "missing ${missing[*]} and no apt-get: this needs a Debian machine"
  _vm_apt_update
  vm_say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    vm_die "apt-get install ${missing[*]} failed"
}

# A static ELF (static-pie included) has no PT_INTERP program header.
file_is_static() {
  local f=$1 phoff phentsize phnum i t
  [ "$(od -An -c -N4 "$f" | tr -d ' ')" = '177ELF' ] || return 1
  phoff=$(od -An -tu8 -j32 -N8 "$f" | tr -d ' ')
  phentsize=$(od -An -tu2 -j54 -N2 "$f" | tr -d ' ')
  phnum=$(od -An -tu2 -j56 -N2 "$f" | tr -d ' ')
  for ((i = 0; i < phnum; i++)); do
    t=$(od -An -tu4 -j$((phoff + i * phentsize)) -N4 "$f" | tr -d ' ')
    [ "$t" = 3 ] && return 1
  done
  return 0
}

# Sets VM_KDIR to the cached unpacked kernel (vmlinuz + modules/ + release).
vm_fetch_kernel() {
  local pkg=${DMULOGD_VM_KERNEL:-}
  if [ -z "$pkg" ]; then
    # Reuse a cached kernel when there is one: no network needed on re-runs.
    # shellcheck disable=SC2012  # Debian package names: no odd characters
    pkg=$(ls -1 "$VM_KCACHE" 2>/dev/null | sort -V | tail -n 1)
  fi
  if [ -z "$pkg" ]; then
    _vm_apt_refresh
    pkg=$(_vm_apt apt-cache depends "linux-image-$VM_DEB_ARCH" 2>/dev/null |
      awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
    [ -n "$pkg" ] || vm_die "cannot find the kernel package behind linux-image-$VM_DEB_ARCH (apt-cache depends linux-image-$VM_DEB_ARCH gave nothing)"
  fi
  VM_KDIR=$VM_KCACHE/$pkg
  local want; want=$(echo "$VM_MODULES_REQUIRED $VM_MODULES_OPTIONAL" | xargs)
  if [ -f "$VM_KDIR/.complete" ]; then
    [ "$(cat "$VM_KDIR/.modules" 2>/dev/null)" = "$want" ] && return 0
    # Unpacked for another module list: add the modules it lacks, in place
    # (a suite running at the same time may be reading this cache).
    # Offline, carry on without them: the boots that need them say so.
    vm_say "adding modules to the cached $pkg"
    _vm_add_modules "$pkg" "$want" ||
      vm_say "warning: could not add modules to $VM_KDIR; boots that need them will fail"
    return 0
  fi

  vm_say "fetching $pkg (cached in $VM_KDIR)"
  local tmp; tmp=$(mktemp -d "${TMPDIR:-/tmp}/dmulogd-kernel.XXXXXX")
  chmod 755 "$tmp"   # apt-get download drops privileges to _apt when it can
  _vm_apt_refresh
  if ! (cd "$tmp" && _vm_apt apt-get download -qq "$pkg" >/dev/null 2>"$tmp/err"); then
    cat "$tmp/err" >&2; rm -rf "$tmp"
    vm_die "apt-get download $pkg failed"
  fi
  dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/x" || { rm -rf "$tmp"; vm_die "dpkg-deb -x of $pkg failed"; }
  local rel
  # shellcheck disable=SC2012  # kernel release names: no odd characters
  rel=$(ls -1 "$tmp/x/lib/modules" | head -n 1)
  # shellcheck disable=SC2015  # the || branch is for either check failing
  [ -n "$rel" ] && [ -f "$tmp/x/boot/vmlinuz-$rel" ] || { rm -rf "$tmp"; vm_die "$pkg has no vmlinuz/modules"; }
  rm -rf "$VM_KDIR"; mkdir -p "$VM_KDIR/modules"
  cp "$tmp/x/boot/vmlinuz-$rel" "$VM_KDIR/vmlinuz"
  cp "$tmp/x/boot/config-$rel" "$VM_KDIR/config"
  echo "$rel" > "$VM_KDIR/release"
  local m f
  for m in $VM_MODULES_REQUIRED $VM_MODULES_OPTIONAL; do
    f=$tmp/x/lib/modules/$rel/kernel/$m.ko
    if [ -f "$f" ]; then cp "$f" "$VM_KDIR/modules/"
    elif [ -f "$f.xz" ] || [ -f "$f.zst" ] || [ -f "$f.gz" ]; then
      rm -rf "$tmp"; vm_die "$m is compressed in $pkg; busybox insmod needs plain .ko files"
    fi
  done
  rm -rf "$tmp"
  for m in $VM_MODULES_REQUIRED; do
    [ -f "$VM_KDIR/modules/$(basename "$m").ko" ] || vm_die "$pkg has no $m.ko"
  done
  grep -q '^CONFIG_CONNECTOR=y' "$VM_KDIR/config" || vm_die "$pkg is not built with CONFIG_CONNECTOR=y"
  echo "$want" > "$VM_KDIR/.modules"
  touch "$VM_KDIR/.complete"
}

# _vm_add_modules PKG WANT: download PKG again and copy the modules of WANT
# that $VM_KDIR/modules lacks; records WANT in $VM_KDIR/.modules.
_vm_add_modules() {
  local pkg=$1 want=$2 tmp rel m f b
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/dmulogd-kernel.XXXXXX") || return 1
  chmod 755 "$tmp"
  _vm_apt_refresh
  if ! (cd "$tmp" && _vm_apt apt-get download -qq "$pkg" >/dev/null 2>"$tmp/err") ||
     ! dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/x"; then
    cat "$tmp/err" >&2; rm -rf "$tmp"; return 1
  fi
  rel=$(cat "$VM_KDIR/release")
  for m in $want; do
    f=$tmp/x/lib/modules/$rel/kernel/$m.ko b=$(basename "$m")
    if [ ! -f "$VM_KDIR/modules/$b.ko" ] && [ -f "$f" ]; then
      cp "$f" "$VM_KDIR/modules/.$b.ko" && mv "$VM_KDIR/modules/.$b.ko" "$VM_KDIR/modules/$b.ko"
    fi
  done
  rm -rf "$tmp"
  echo "$want" > "$VM_KDIR/.modules"
}

# The guest's own packages for a foreign architecture: Debian's static
# busybox, and dmsetup with the libraries it loads (its dependencies, found
# with apt-cache depends --recurse), unpacked into VM_USERLAND (bin/busybox,
# sbin/dmsetup, lib/ and usr/lib/<triplet>/*.so*, the dynamic loader).
# x86_64 guests use the host's busybox-static and dmsetup instead.
VM_USERLAND_PKGS="busybox-static dmsetup"
vm_fetch_userland() {
  VM_USERLAND=
  [ "$VM_ARCH" = x86_64 ] && return 0
  VM_USERLAND=$VM_CACHE/userland-$VM_DEB_ARCH
  [ -f "$VM_USERLAND/.complete" ] && return 0
  vm_say "fetching $VM_DEB_ARCH busybox-static and dmsetup (cached in $VM_USERLAND)"
  _vm_apt_refresh
  local pkgs tmp d
  # shellcheck disable=SC2086  # VM_USERLAND_PKGS: one word per package
  pkgs=$(_vm_apt apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
           --no-breaks --no-replaces --no-enhances $VM_USERLAND_PKGS 2>/dev/null |
         awk '/^[a-z0-9]/ { print $1 }' | sort -u)
  [ -n "$pkgs" ] || vm_die "apt-cache depends $VM_USERLAND_PKGS ($VM_DEB_ARCH) gave nothing"
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/dmulogd-userland.XXXXXX")
  chmod 755 "$tmp"
  # shellcheck disable=SC2086  # pkgs: one word per package
  if ! (cd "$tmp" && _vm_apt apt-get download -qq $pkgs >/dev/null 2>"$tmp/err"); then
    cat "$tmp/err" >&2; rm -rf "$tmp"
    vm_die "apt-get download of the $VM_DEB_ARCH packages ${pkgs//$'\n'/ } failed"
  fi
  for d in "$tmp"/*.deb; do
    dpkg-deb -x "$d" "$tmp/x" || { rm -rf "$tmp"; vm_die "dpkg-deb -x $d failed"; }
  done
  if ! [ -x "$tmp/x/bin/busybox" ] || ! file_is_static "$tmp/x/bin/busybox" || ! [ -x "$tmp/x/sbin/dmsetup" ]; then
    rm -rf "$tmp"; vm_die "the $VM_DEB_ARCH packages have no static bin/busybox or no sbin/dmsetup"
  fi
  rm -rf "$VM_USERLAND"; mkdir -p "$VM_USERLAND"/{bin,sbin,lib}
  cp "$tmp/x/bin/busybox" "$VM_USERLAND/bin/"
  cp "$tmp/x/sbin/dmsetup" "$VM_USERLAND/sbin/"
  # the libraries (symbolic links kept) and lib/ld-linux-*.so.*
  cp -a "$tmp"/x/lib/ld-linux* "$VM_USERLAND/lib/"
  for d in lib usr/lib; do
    for t in "$tmp/x/$d"/*-linux-gnu; do
      [ -d "$t" ] || continue
      mkdir -p "$VM_USERLAND/$d/${t##*/}"
      find "$t" -maxdepth 1 -name '*.so*' -exec cp -a {} "$VM_USERLAND/$d/${t##*/}/" \;
    done
  done
  rm -rf "$tmp"
  touch "$VM_USERLAND/.complete"
}

# Sets VM_BASE to a cached gzip'd cpio with busybox, modules, dmsetup + libs.
vm_build_base() {
  local dmsetup bb key
  if [ -n "$VM_USERLAND" ]; then
    dmsetup=$VM_USERLAND/sbin/dmsetup bb=$VM_USERLAND/bin/busybox
    key=$( { echo "$VM_BASE_REV $VM_KDIR"; ls "$VM_KDIR/modules";
             cd "$VM_USERLAND" && find . -type f | LC_ALL=C sort | xargs sha256sum; } |
           sha256sum | cut -c1-16)
  else
    dmsetup=$(command -v dmsetup || echo /sbin/dmsetup)
    bb=/bin/busybox
    key=$( { echo "$VM_BASE_REV $VM_KDIR"; ls "$VM_KDIR/modules"; sha256sum "$bb" "$dmsetup";
             ldd "$dmsetup" | awk '/=>/ { print $3 } /ld-linux/ { print $1 }' | xargs -r sha256sum; } |
           sha256sum | cut -c1-16)
  fi
  VM_BASE=$VM_CACHE/base-$key.cpio.gz
  [ -f "$VM_BASE" ] && return 0
  vm_say "building base initramfs $VM_BASE"
  local root; root=$(mktemp -d "${TMPDIR:-/tmp}/dmulogd-base.XXXXXX")
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib/modules,proc,sys,dev,tmp,run,etc,mnt}
  cp "$bb" "$root/bin/busybox"
  cp "$dmsetup" "$root/sbin/dmsetup"
  local lib
  if [ -n "$VM_USERLAND" ]; then
    cp -a "$VM_USERLAND/lib" "$root/"
    [ -d "$VM_USERLAND/usr/lib" ] && cp -a "$VM_USERLAND/usr/lib" "$root/usr/"
  else
    for lib in $(ldd "$dmsetup" | awk '/=>/ && $3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }'); do
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  fi
  local m order=
  for m in $VM_MODULES_REQUIRED $VM_MODULES_OPTIONAL; do
    m=$(basename "$m")
    [ -f "$VM_KDIR/modules/$m.ko" ] || continue
    cp "$VM_KDIR/modules/$m.ko" "$root/lib/modules/"
    order="$order$m "
  done
  echo "$order" > "$root/lib/modules/order"
  cp "$VM_KDIR/release" "$root/lib/modules/release"
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 > "$VM_BASE.tmp" ||
    { rm -rf "$root"; vm_die "packing the base initramfs failed"; }
  mv "$VM_BASE.tmp" "$VM_BASE"
  rm -rf "$root"
}

vm_setup() {
  [ "$(uname -m)" = x86_64 ] || vm_die "the VM tests need an x86_64 host (this is $(uname -m))"
  vm_need_packages
  mkdir -p "$VM_CACHE" "$VM_LOGDIR" || vm_die "cannot create $VM_CACHE or $VM_LOGDIR"
  vm_fetch_kernel
  vm_fetch_userland
  vm_build_base
}

# vm_initrd OUT [--no-dmulogd]: base + guest scripts (+ the current dmulogd).
vm_initrd() {
  local out=$1 with_d=1
  [ "${2:-}" = --no-dmulogd ] && with_d=
  local root; root=$(mktemp -d "${TMPDIR:-/tmp}/dmulogd-initrd.XXXXXX")
  mkdir -p "$root/vm/t" "$root/sbin"
  install -m 755 "$VM_DIR/guest/init" "$root/init"
  install -m 644 "$VM_DIR/guest/common.sh" "$root/vm/common.sh"
  install -m 644 "$VM_DIR"/guest/t-*.sh "$root/vm/t/"
  # the documentation's table lines, for t-doctables.sh
  "$VM_DIR/doc-tables.sh" > "$root/vm/doc-tables" || { rm -rf "$root"; vm_die "tests/vm/doc-tables.sh failed"; }
  if [ -n "$with_d" ]; then
    [ -x "$VM_DMULOGD" ] || { rm -rf "$root"; vm_die "$VM_DMULOGD is missing: run 'make static' first"; }
    file_is_static "$VM_DMULOGD" || { rm -rf "$root"; vm_die "$VM_DMULOGD is not statically linked"; }
    install -m 755 "$VM_DMULOGD" "$root/sbin/dmulogd"
  fi
  # guest/nlpoke.c: disturbs the daemon's netlink traffic (t-handover.sh's
  # lost-resume and overflow cases); built for x86_64 guests only (no cross
  # gcc here): an aarch64 boot running those cases fails on its absence
  if [ "$VM_ARCH" = x86_64 ]; then
    gcc -static -O2 -s -o "$root/sbin/nlpoke" "$VM_DIR/guest/nlpoke.c" ||
      { rm -rf "$root"; vm_die "cannot build tests/vm/guest/nlpoke.c with gcc -static"; }
  fi
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 > "$out.extra" ||
    { rm -rf "$root"; vm_die "packing the initramfs failed"; }
  # The kernel unpacks concatenated cpio archives in order.
  cat "$VM_BASE" "$out.extra" > "$out"
  rm -f "$out.extra"
  rm -rf "$root"
}

# vm_boot NAME TESTS TIMEOUT [extra qemu args...]
# Boots $VM_INITRD once; the serial log goes to $VM_LOGDIR/NAME.log.
# VM_VERBOSE=N: the guest starts dmulogd with N times -v (2: every request).
# Returns qemu's (or timeout's: 124) exit status.
vm_boot() {
  local name=$1 tests=$2 tmo=$3; shift 3
  local log=$VM_LOGDIR/$name.log
  local t0=$SECONDS rc=0 pid
  timeout -k 10 "$tmo" "$VM_QEMU" -accel tcg "${VM_QEMU_ARGS[@]}" -m 512 -smp 1 -nographic -no-reboot \
    -nic none -kernel "$VM_KDIR/vmlinuz" -initrd "$VM_INITRD" \
    -append "console=$VM_CONSOLE panic=-1 quiet no_timer_check dmtest=$tests dmverbose=${VM_VERBOSE:-0} dmtmoscale=$VM_TMO_SCALE" "$@" </dev/null >"$log" 2>&1 &
  pid=$!
  # so that an interrupted suite can stop exactly the VMs it started
  [ -n "${VM_PIDFILE:-}" ] && echo "$pid" >> "$VM_PIDFILE"
  wait "$pid" || rc=$?
  echo "$((SECONDS - t0))" > "$VM_LOGDIR/$name.secs"
  return $rc
}

# Lines that mean the kernel itself went wrong, whatever the test printed.
# The last two: dm-log-userspace got a reply that does not fit the request.
VM_KERNEL_BAD='Oops|BUG:|WARNING:|Kernel panic|Call Trace|blocked for more than|general protection fault|UBSAN:|KASAN:|Insufficient space to receive package|Incomplete message received'

# vm_check NAME RC [--no-end] PASS-NAMES...
# Prints a verdict; returns 0 only when every expected PASS marker is there,
# no FAIL marker, no kernel error, no timeout and (unless --no-end) the guest
# reached its end marker.
vm_check() {
  local name=$1 rc=$2; shift 2
  local need_end=1
  [ "${1:-}" = --no-end ] && { need_end=; shift; }
  local log=$VM_LOGDIR/$name.log clean=$VM_LOGDIR/$name.clean
  local bad=() p
  tr -d '\r' < "$log" > "$clean"
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && bad+=("guest timed out ($(cat "$VM_LOGDIR/$name.secs")s)")
  if [ "$rc" != 0 ] && [ "$rc" != 124 ] && [ "$rc" != 137 ]; then bad+=("qemu exited with status $rc"); fi
  while IFS= read -r p; do bad+=("guest: $p"); done < <(grep -E '^FAIL ' "$clean")
  for p in "$@"; do
    grep -Eq "(^|[][ ])PASS $p\$" "$clean" || bad+=("missing 'PASS $p'")
  done
  if [ -n "$need_end" ] && ! grep -q '^VM-END' "$clean"; then
    bad+=("guest did not reach its end (last test started: $(grep -E '^=== RUN ' "$clean" | tail -n 1 | cut -c9-))")
  fi
  # Kernel lines only: not the guest's own FAIL lines or indented notes.
  while IFS= read -r p; do bad+=("kernel: $p"); done < <(grep -vE '^(dmulogd\| |FAIL |  )' "$clean" | grep -E "$VM_KERNEL_BAD" | head -n 5)
  if [ ${#bad[@]} -eq 0 ]; then
    rm -f "$clean"
    echo "vm: boot $name: ok ($*) in $(cat "$VM_LOGDIR/$name.secs")s"
    return 0
  fi
  echo "vm: boot $name: FAILED after $(cat "$VM_LOGDIR/$name.secs")s"
  for p in "${bad[@]}"; do echo "vm:   $p"; done
  echo "vm: serial log: $log; its last 60 lines before the kernel log dump:"
  grep -v '^dmesg| ' "$clean" | tail -n 60 | sed 's/^/  | /'
  if grep -q '^dmesg| ' "$clean"; then
    echo "vm: last device-mapper lines of the kernel log:"
    grep '^dmesg| ' "$clean" | grep -E 'device-mapper|dm-|raid1|Oops|BUG|WARN|Trace' | tail -n 20 | sed 's/^/  | /'
  fi
  rm -f "$clean"
  return 1
}

# vm_disks DIR: blank images (legs 8 MiB, log 1 MiB) in DIR; prints the
# -drive arguments (vda = leg 0, vdb = leg 1, vdc = log).  cache=none when
# DIR supports O_DIRECT (not tmpfs); the power cut is QEMU exiting, so an
# acknowledged write is in the image file either way.
vm_disks() {
  local dir=$1 cache=none f
  mkdir -p "$dir"
  rm -f "$dir"/leg0.img "$dir"/leg1.img "$dir"/log.img
  # shellcheck disable=SC2015  # the || branch is for either step failing
  truncate -s 8M "$dir/leg0.img" "$dir/leg1.img" && truncate -s 1M "$dir/log.img" ||
    vm_die "cannot create disk images in $dir"
  dd if=/dev/zero of="$dir/probe" bs=4096 count=1 oflag=direct 2>/dev/null || cache=writeback
  rm -f "$dir/probe"
  for f in leg0 leg1 log; do
    printf -- '-drive file=%s/%s.img,if=virtio,format=raw,cache=%s ' "$dir" "$f" "$cache"
  done
}

# vm_disk FILE SIZE: a blank sparse image (SIZE as truncate takes it);
# prints its -drive argument (cache=none where FILE's directory allows).
vm_disk() {
  local f=$1 cache=none
  mkdir -p "$(dirname "$f")"
  rm -f "$f"
  truncate -s "$2" "$f" || vm_die "cannot create the disk image $f"
  dd if=/dev/zero of="$f.probe" bs=4096 count=1 oflag=direct 2>/dev/null || cache=writeback
  rm -f "$f.probe"
  printf -- '-drive file=%s,if=virtio,format=raw,cache=%s ' "$f" "$cache"
}

vm_arch "${VM_ARCH:-x86_64}"
