# bkv developer tasks. `make verify` is read-only: fmt check, clippy, tests.
CARGO ?= cargo
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: verify test fmt-check clippy build fix bench clean

verify: fmt-check clippy test

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Binaries first: the multi-process tests start the real bkv-node and bkv binaries.
build:
	$(CARGO) build --workspace --bins --examples

test: build
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run --workspace --no-fail-fast
else
	$(CARGO) test --workspace --no-fail-fast -- --test-threads=2
endif
	$(CARGO) test --workspace --doc

fix:
	$(CARGO) fmt --all
	$(CARGO) clippy --workspace --all-targets --fix --allow-dirty --allow-staged

bench:
	$(CARGO) bench --workspace

clean:
	$(CARGO) clean
