# bkv developer tasks. `make verify` is read-only: fmt check, clippy, tests.
CARGO ?= cargo
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: verify test fmt-check clippy build failpoints-bin chaos soak fix bench clean fuzz fuzz-build fuzz-seeds deny compose-test

verify: fmt-check clippy test

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p bkv-node -p bkv-failpoints --all-targets --features bkv-node/failpoints -- -D warnings

TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)

# The chaos tests (tests/tests/c*_*.rs) run bkv-node built with the `failpoints` feature,
# under a second name; the plain bkv-node, built right after, stays free of failpoints.
failpoints-bin:
	$(CARGO) build --workspace --bins --features bkv-node/failpoints
	cp $(TARGET_DIR)/debug/bkv-node $(TARGET_DIR)/debug/bkv-node-failpoints

# Binaries first: the multi-process tests start the real bkv-node and bkv binaries.
build: failpoints-bin
	$(CARGO) build --workspace --bins --examples

test: build
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run --workspace --no-fail-fast
else
	$(CARGO) test --workspace --no-fail-fast -- --test-threads=2
endif
	$(CARGO) test --workspace --doc

# The compose cluster (docker-compose.yml) built, run and checked from the host with the bkv
# CLI: up, register and recover, a killed node restarting, a restarted one catching up,
# down/up with the volumes kept, down -v (cluster/compose-test). With Docker Compose v2 when
# it answers, else podman-compose (podman, podman-compose and what they need are installed
# when missing). Debug binaries, built if needed (BKV_PROFILE=release for release ones,
# BKV_SKIP_BUILD=1 to take those already in target/).
compose-test:
	cluster/compose-test

# Seeded random chaos: `make chaos SEED=7 DURATION=120` (seconds; NODES=5 for five nodes).
# The same seed drives the loopback run (c99: proxy faults, failpoints, signals) and the
# kernel run (c199, in network namespaces: the whole fault list), then the focused kernel
# scenarios run. Each run prints its seed, schedule and history file; the same seed replays
# the same schedule. The kernel runs need root, iproute2, util-linux and iptables (they say
# why and skip otherwise; BKV_REQUIRE_KERNEL_FAULTS=1 makes that a failure).
SEED ?= $(shell date +%s)
DURATION ?= 60
NODES ?= 3
KERNEL_SCENARIOS = c110_kernel_lossy_links c115_kernel_slow_links c120_kernel_partitions \
  c125_kernel_client_cut c150_kernel_disk_faults
chaos: build
	BKV_CHAOS_SEED=$(SEED) BKV_CHAOS_DURATION=$(DURATION) BKV_CHAOS_NODES=$(NODES) \
	  $(CARGO) test -p bkv-tests --test c99_random_chaos -- --nocapture
	BKV_CHAOS_SEED=$(SEED) BKV_CHAOS_DURATION=$(DURATION) BKV_CHAOS_NODES=$(NODES) \
	  $(CARGO) test -p bkv-tests --test c199_kernel_random_chaos -- --nocapture
	for t in $(KERNEL_SCENARIOS); do \
	  $(CARGO) test -p bkv-tests --test $$t -- --nocapture || exit 1; done

# The soak: the kernel run at the soak pace (a fault every 1.5 s plus its heal, drawn from the whole
# fault list) for SOAK_SECONDS, then every checker; prints faults injected, operations,
# releases, charges and every invariant's figures. `make soak SOAK_SECONDS=600 SEED=3`.
SOAK_SECONDS ?= 3600
SOAK_NODES ?= 3
soak: build
	BKV_CHAOS_SEED=$(SEED) BKV_CHAOS_DURATION=$(SOAK_SECONDS) BKV_CHAOS_NODES=$(SOAK_NODES) \
	  BKV_CHAOS_PACE=soak $(CARGO) test -p bkv-tests --test c199_kernel_random_chaos -- --nocapture

fix:
	$(CARGO) fmt --all
	$(CARGO) clippy --workspace --all-targets --fix --allow-dirty --allow-staged

bench:
	$(CARGO) bench --workspace

clean:
	$(CARGO) clean

# Fuzzing (cargo-fuzz, libFuzzer, nightly): every target in fuzz/fuzz_targets/ for
# FUZZ_SECONDS each, or only FUZZ_TARGETS. New inputs go to fuzz/work/<target> (ignored by
# git); the committed seeds in fuzz/corpus/<target> are read, never written. Crashes land in
# fuzz/artifacts/<target>. The same checks run as bounded property tests in `make test`.
FUZZ_TARGETS ?= $(sort $(basename $(notdir $(wildcard fuzz/fuzz_targets/*.rs))))
FUZZ_SECONDS ?= 60

fuzz-build:
	$(CARGO) +nightly fuzz build

fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/work/$$t; \
		echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
		$(CARGO) +nightly fuzz run $$t fuzz/work/$$t fuzz/corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1; \
	done

# Rewrites the committed seed corpora (bkv-core first: the request seeds reuse its messages).
fuzz-seeds:
	$(CARGO) test -p bkv-core --test fuzz_props -- --ignored write_seeds
	$(CARGO) test -p bkv-hsm --test fuzz_props -- --ignored write_seeds
	$(CARGO) test -p bkv-raft --test fuzz_props -- --ignored write_seeds
	$(CARGO) test -p bkv-node --test fuzz_props -- --ignored write_seeds
	$(CARGO) test -p bkv-client --test fuzz_props -- --ignored write_seeds
	$(CARGO) test -p bkv-client --test fuzz_props_backup -- --ignored write_seeds

# Dependency hygiene (deny.toml). Licenses, bans and sources need no network. Advisories are
# checked offline against the copy of the RustSec database kept in deny/advisory-db.tar.gz
# (deny/check-advisories unpacks it into $(TARGET_DIR) and prints which copy and date it used;
# refresh the copy as deny/README.md says). A vulnerable dependency fails.
deny:
	$(CARGO) deny --locked check licenses bans sources
	CARGO="$(CARGO)" TARGET_DIR="$(TARGET_DIR)" deny/check-advisories
