# dmulogd — build, test and run entry points.  Every target is usable on a
# fresh Debian machine as root: anything a target needs from Debian is
# installed by the script behind it.

PREFIX ?= /usr
DESTDIR ?=
CARGO ?= cargo
# ARCH=aarch64 cross-builds the static binary for arm64 (README.md, "Other
# architectures"); the default is the x86_64 binary at target/static/dmulogd.
ARCH ?= x86_64
ifeq ($(ARCH),x86_64)
STATIC := target/static/dmulogd
else
STATIC := target/static-$(ARCH)/dmulogd
endif
MUSL := $(ARCH)-unknown-linux-musl

.PHONY: all build static lint test unit-test be-test vm-test vm-test-arm64 boot-test demo bench soak fuzz install clean

all: build

build:
	$(CARGO) build --release

# A stripped, statically linked binary for initramfs, rescue media and
# appliances.  Preferred: musl, with std rebuilt without its backtrace
# symboliser (gimli/addr2line: ~300 KB of a 540 KB binary; a panic still
# logs its message).  That needs the rust-src component and -Z build-std,
# which the stable toolchain accepts with RUSTC_BOOTSTRAP=1.  Fallbacks:
# plain musl, then (native builds only) glibc with crt-static.  Whatever
# the path, refuse a binary that `file` does not call statically linked.
# A cross build (ARCH other than the host's) links with the toolchain's own
# rust-lld against the musl target's self-contained libc and crt objects:
# no cross gcc or foreign libc from Debian is needed.
STATIC_FLAGS := -C relocation-model=static
HOST_ARCH := $(shell uname -m)
ifneq ($(ARCH),$(HOST_ARCH))
STATIC_FLAGS += -C linker=rust-lld
endif
FILE_ARCH_x86_64 := x86-64
FILE_ARCH_aarch64 := ARM aarch64
static:
	@set -e; mkdir -p $(dir $(STATIC)); rm -f $(STATIC); \
	if ! rustup target list --installed 2>/dev/null | grep -qx $(MUSL); then \
	  rustup target add $(MUSL) >/dev/null 2>&1 || true; fi; \
	if rustup target list --installed 2>/dev/null | grep -qx $(MUSL); then \
	  if rustup component add rust-src >/dev/null 2>&1 && \
	     RUSTC_BOOTSTRAP=1 RUSTFLAGS="$(STATIC_FLAGS)" $(CARGO) build --release --target $(MUSL) \
	       --target-dir target/build-std -Z build-std=std,panic_abort -Z build-std-features= ; then \
	    echo "static: $(MUSL), std without backtrace symbolisation"; \
	    cp target/build-std/$(MUSL)/release/dmulogd $(STATIC); \
	  else \
	    echo "static: $(MUSL) (rust-src or build-std unavailable)"; \
	    RUSTFLAGS="$(STATIC_FLAGS)" $(CARGO) build --release --target $(MUSL); \
	    cp target/$(MUSL)/release/dmulogd $(STATIC); \
	  fi; \
	elif [ "$(ARCH)" = "$(HOST_ARCH)" ]; then \
	  echo "static: glibc crt-static (musl target not available)"; \
	  RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --target $(ARCH)-unknown-linux-gnu; \
	  cp target/$(ARCH)-unknown-linux-gnu/release/dmulogd $(STATIC); \
	else \
	  echo "static: cannot install the Rust target $(MUSL) (rustup target add $(MUSL))"; exit 1; \
	fi
	@file $(STATIC) | grep -Eq 'statically linked|static-pie linked' || \
	  { echo "static: $(STATIC) is not statically linked:"; file $(STATIC); exit 1; }
	@file $(STATIC) | grep -q '$(or $(FILE_ARCH_$(ARCH)),$(ARCH))' || \
	  { echo "static: $(STATIC) is not an $(ARCH) binary:"; file $(STATIC); exit 1; }
	@echo "static: $(STATIC) $$(stat -c %s $(STATIC)) bytes"

# Formatting (rustfmt.toml), clippy on every target with warnings as
# errors, and shellcheck over every shell script that ships or tests.
lint:
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	tests/lint-shell.sh

# The test profile (Cargo.toml) is optimised but keeps debug assertions
# and overflow checks, for the library and the binary under test alike.
unit-test:
	$(CARGO) test

# The unit tests and the codec, bitmap and on-disk format tests again on
# a big-endian target (s390x, under qemu-user), and a log image carried
# from x86_64 to s390x and back (tests/cross/be-test.sh).
be-test:
	tests/cross/be-test.sh

# Real-kernel scenarios in a QEMU VM (tests/vm/README.md), x86_64 guests
# and one emulated arm64 guest (the arm64 boot; vm-test-arm64 runs it alone).
vm-test: static
	$(MAKE) --no-print-directory static ARCH=aarch64
	tests/vm/run-suite.sh

vm-test-arm64:
	$(MAKE) --no-print-directory static ARCH=aarch64
	tests/vm/run-suite.sh arm64

# Root file system on a dmulogd-served mirror, booted from an initramfs
# made by Debian's mkinitramfs with our hook.
boot-test: static
	tests/boot/run.sh

test: lint unit-test be-test vm-test boot-test

demo: static
	tests/vm/demo.sh

bench: static
	bench/run.sh

# The long model-based run (random request sequences against the state
# machine and the binary, checked against a reference model), 10 minutes
# by default: DMULOGD_SOAK_SECS=N to change; a failure prints its seed.
soak:
	DMULOGD_SOAK_SECS=$${DMULOGD_SOAK_SECS:-600} $(CARGO) test --test model soak -- --ignored --nocapture
	DMULOGD_SEED=$$(date +%s) DMULOGD_STEPS=5000 $(CARGO) test --test crash kill_9 -- --nocapture

# libFuzzer (cargo-fuzz) on the datagram decoder and on decode + dispatch
# with live logs, FUZZ_SECS per target (default 300). fuzz/ is a separate
# workspace: nothing it uses enters the daemon's dependencies.
fuzz:
	fuzz/run.sh

install: static
	initramfs/install.sh "$(DESTDIR)" "$(PREFIX)" "$(STATIC)"

clean:
	$(CARGO) clean
