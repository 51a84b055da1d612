# AuditDB: the two entry points are `make demo` and `make test` (see README.md).
# Both install what they need on a fresh Debian machine first (as root, or with sudo).

SWIFT ?= swift
APT_PACKAGES := libsodium-dev libssl-dev libsqlite3-dev pkg-config sqlite3 python3 postgresql openssl faketime
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup build test test-example check-adoptable demo release man completions clean

## setup: install the system packages AuditDB builds and tests with (only the missing ones)
setup:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: setup
	$(SWIFT) build

## test: check-adoptable, the example app's integration test, then the whole test suite (Swift
## Testing only, so the summary line is unambiguous and the last one printed)
test: setup
	SWIFT="$(SWIFT)" ./scripts/check-adoptable.sh
	$(MAKE) test-example
	$(SWIFT) test --disable-xctest

## test-example: examples/AuditedService (Hummingbird, its own package): starts the real service,
## drives it over HTTP, stops it with SIGTERM, verifies the store. A cold build adds several minutes.
test-example: setup
	$(SWIFT) test --disable-xctest --package-path examples/AuditedService

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

## man: the manual page auditdb.1, from the argument parser (swift-argument-parser's
## generate-manual plugin; works offline), copied to .build/man/auditdb.1
man: setup
	$(SWIFT) package --disable-sandbox plugin generate-manual --configuration release
	mkdir -p .build/man && cp .build/plugins/GenerateManual/outputs/auditdb/auditdb.1 .build/man/auditdb.1

## completions: bash, zsh and fish completion scripts in .build/completions/
completions: release
	mkdir -p .build/completions
	for shell in bash zsh fish; do \
		"$$($(SWIFT) build -c release --show-bin-path)/auditdb" --generate-completion-script $$shell > .build/completions/auditdb.$$shell; \
	done

clean:
	rm -rf .build
