# AuditDB: the two entry points are `make demo` and `make test` (see README.md).
# Both install what they need on a fresh Debian machine first (as root, or with sudo).

SWIFT ?= swift
APT_PACKAGES := libsodium-dev libssl-dev libsqlite3-dev pkg-config sqlite3 python3 postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup build test check-adoptable demo release clean

## setup: install the system packages AuditDB builds and tests with (only the missing ones)
setup:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: setup
	$(SWIFT) build

## test: check-adoptable, then the whole test suite (Swift Testing only, so the summary line is
## unambiguous and the last one printed)
test: setup
	SWIFT="$(SWIFT)" ./scripts/check-adoptable.sh
	$(SWIFT) test --disable-xctest

## check-adoptable: a package that depends on AuditDB by version (`from:` a tag of HEAD) builds
## and runs; catches what a path dependency hides (e.g. unsafeFlags). A cold build, 1-2 min.
check-adoptable: setup
	SWIFT="$(SWIFT)" ./scripts/check-adoptable.sh

## demo: build, then run a demo store: append, query, verify, tamper, verify again
demo: setup
	$(SWIFT) build --product auditdb
	./scripts/demo.sh "$$($(SWIFT) build --show-bin-path)/auditdb"

release: setup
	$(SWIFT) build -c release --product auditdb

clean:
	rm -rf .build
