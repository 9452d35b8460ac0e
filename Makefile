# dmulogd — build, test and run entry points.  Every target is usable on a
# fresh Debian machine as root: anything a target needs from Debian is
# installed by the script behind it.

PREFIX ?= /usr
DESTDIR ?=
CARGO ?= cargo
STATIC := target/static/dmulogd
MUSL := x86_64-unknown-linux-musl

.PHONY: all build static test unit-test vm-test boot-test demo bench soak fuzz install clean

all: build

build:
	$(CARGO) build --release

# A stripped, statically linked binary for initramfs, rescue media and
# appliances.  musl when its std is installed (or installable), else glibc
# with crt-static; refuse anything `file` does not call statically linked.
static:
	@if rustup target list --installed 2>/dev/null | grep -qx $(MUSL) || \
	    rustup target add $(MUSL) >/dev/null 2>&1; then \
	  echo "static: musl"; \
	  $(CARGO) build --release --target $(MUSL) && \
	  mkdir -p target/static && cp target/$(MUSL)/release/dmulogd $(STATIC); \
	else \
	  echo "static: glibc crt-static (musl target not available)"; \
	  RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --target x86_64-unknown-linux-gnu && \
	  mkdir -p target/static && cp target/x86_64-unknown-linux-gnu/release/dmulogd $(STATIC); \
	fi
	@file $(STATIC) | grep -Eq 'statically linked|static-pie linked' || \
	  { echo "static: $(STATIC) is not statically linked:"; file $(STATIC); exit 1; }
	@ls -l $(STATIC) | awk '{print "static: " $$9 " " $$5 " bytes"}'

unit-test:
	$(CARGO) test --release

# Real-kernel scenarios in a QEMU VM (tests/vm/README.md).
vm-test: static
	tests/vm/run-suite.sh

# Root file system on a dmulogd-served mirror, booted from an initramfs
# made by Debian's mkinitramfs with our hook.
boot-test: static
	tests/boot/run.sh

test: unit-test vm-test boot-test

demo: static
	tests/vm/demo.sh

bench: static
	bench/run.sh

install: static
	initramfs/install.sh "$(DESTDIR)" "$(PREFIX)" "$(STATIC)"

clean:
	$(CARGO) clean
