#!/usr/bin/env bash
# make be-test: the codec, bitmap and on-disk format tests on a big-endian
# target (s390x-unknown-linux-gnu) under qemu-user, and a log image carried
# both ways between it and the host (tests/cross_endian.rs says what each
# test pins). Installs what it needs, as root on Debian 12: the s390x Rust
# standard library (rustup), Debian's s390x cross linker and C library, and
# qemu-user for qemu-s390x. The linker and runner are set here, for this
# run only, not in a .cargo/config that every other build would read.
set -euo pipefail
cd "$(dirname "$0")/../.."

target=s390x-unknown-linux-gnu
triple=s390x-linux-gnu
# Its own target directory: `cargo test` on the host keeps its build.
target_dir=target/s390x
cargo=${CARGO:-cargo}

packages=("gcc-$triple" libc6-dev-s390x-cross qemu-user)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "be-test: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! rustup target list --installed | grep -qx "$target"; then
  echo "be-test: rustup target add $target"
  rustup target add "$target"
fi

installed=$SECONDS

export CARGO_TARGET_S390X_UNKNOWN_LINUX_GNU_LINKER=$triple-gcc
export CARGO_TARGET_S390X_UNKNOWN_LINUX_GNU_RUNNER="qemu-s390x -L /usr/$triple"

# Integration tests that run on s390x, and those that do not, by file; a
# test file in neither list fails the run, so none is left out unsaid.
on_s390x=(cross_endian model fuzz_datagrams)
# Each of these spawns the dmulogd binary (lifecycle, hostile, crash,
# limits, device_errors, docs, inspect_cli and operator), which an emulated process
# cannot exec: qemu-user runs one s390x process, and running its children
# too would take a binfmt_misc entry for s390x, a change to the host's
# kernel that a test must not make. operator and netlink_sender also need
# the host's netlink connector as root, and qemu-user refuses that socket
# (socket(AF_NETLINK, .., NETLINK_CONNECTOR) fails with EPROTONOSUPPORT
# under qemu-s390x 7.2); device_errors needs loop devices, chattr, mounts.
not_on_s390x=(lifecycle hostile crash limits device_errors docs inspect_cli operator netlink_sender)
for f in tests/*.rs; do
  t=$(basename "$f" .rs)
  case " ${on_s390x[*]} ${not_on_s390x[*]} " in
    *" $t "*) ;;
    *)
      echo "be-test: tests/$t.rs is in neither list of $0" >&2
      exit 1
      ;;
  esac
done

tests=(--lib)
for t in "${on_s390x[@]}"; do tests+=(--test "$t"); done
echo "be-test: on $target under qemu-s390x: unit tests, ${on_s390x[*]}"
echo "be-test: not on $target (they spawn the binary; see $0): ${not_on_s390x[*]}"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# model.rs: its model_binary_* tests spawn the binary (see above); the
# in-process ones drive the same request handling on s390x. Emulation is
# 6 to 20 times slower, so the model and fuzz tests take 2,000 steps per
# seed here (~160,000 model steps and 4,000 mutated datagrams, about an
# eighth and a seventieth of the host's run: 40 s instead of 12 minutes).
DMULOGD_STEPS=2000 DMULOGD_EXPECT_ENDIAN=big DMULOGD_WRITE_IMAGE="$scratch/s390x-log.img" \
  "$cargo" test --target "$target" --target-dir "$target_dir" "${tests[@]}" -- --skip model_binary

emulated=$SECONDS

# Big-endian to little: the host reads what s390x wrote (and the s390x
# run already found it byte for byte equal to the x86_64 fixture).
test -s "$scratch/s390x-log.img"
cmp "$scratch/s390x-log.img" tests/data/x86_64-log.img
DMULOGD_FOREIGN_IMAGE="$scratch/s390x-log.img" \
  "$cargo" test --test cross_endian a_log_written_on_another_architecture_reads_back

# The s390x binary's `inspect` of the x86_64 image, against the host's
# (the test profile: the binaries `cargo test` built already).
"$cargo" build --quiet --profile test --bin dmulogd
"$cargo" build --quiet --profile test --target "$target" --target-dir "$target_dir" --bin dmulogd
host=$(target/debug/dmulogd inspect tests/data/x86_64-log.img)
be=$(qemu-s390x -L /usr/$triple "$target_dir/$target/debug/dmulogd" inspect tests/data/x86_64-log.img)
if [ "$host" != "$be" ]; then
  printf 'be-test: inspect differs\n--- x86_64\n%s\n--- s390x\n%s\n' "$host" "$be" >&2
  exit 1
fi
echo "be-test: dmulogd inspect on s390x reads the x86_64 image as the host does:"
echo "$be"
echo "be-test: passed in ${SECONDS}s (installs ${installed}s, s390x build and tests $((emulated - installed))s)"
