# danm task file. The tiers: unit, guests, netns, e2e (lab), bench, lint. `make test` runs all of them.
# Cargo target directories live outside the checkout so CI runs and sessions reuse them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/danm-target
export DANM_GUESTS_TARGET_DIR ?= $(HOME)/.cache/danm-guests-target
# Where `make guests` puts the built plugins; tests and the lab load them from here.
export DANM_PLUGIN_DIR ?= $(CURDIR)/build/plugins
export DANM_TEST_PLUGIN_DIR ?= $(CURDIR)/build/test-plugins
# Plugins built but not installed: the backend template's host-device.wasm, which a test drops into a running node.
export DANM_EXTRA_PLUGIN_DIR ?= $(CURDIR)/build/extra-plugins
# Tests that need the plugins fail instead of skipping when they are missing.
export DANM_REQUIRE_FIXTURES ?= 1
# The fuzz targets' instrumented build (fuzz/, a workspace of its own) and how long `make fuzz` runs each target.
export DANM_FUZZ_TARGET_DIR ?= $(HOME)/.cache/danm-fuzz-target
FUZZ_SECONDS ?= 20
# The lab servers of the unit run append every API request here (DANM_LAB_AUDIT); the RBAC check reads it.
RBAC_AUDIT ?= $(HOME)/.cache/danm-rbac-audit.jsonl

CARGO ?= cargo

.PHONY: all setup build guests crds unit netns e2e bench lint test lab clean-plugins kernel-lane fuzz rbac runtime-e2e images

all: build guests

setup:
	@bash scripts/setup.sh

## build: every host binary and test target, among them `danmctl` and the kubectl plugin `kubectl-danm` (copy it onto
## PATH to get `kubectl danm`, docs/operating.md).
build: setup
	$(CARGO) build --workspace --all-targets

## guests: build every WASI plugin once (release, wasm32-wasip2) and stage them for the host (the backend template's
## host-device.wasm apart, in $(DANM_EXTRA_PLUGIN_DIR)).
guests: setup
	CARGO_TARGET_DIR=$(DANM_GUESTS_TARGET_DIR) bash guests/build.sh

## crds: regenerate deploy/crds from the Rust types.
crds:
	$(CARGO) run -q -p danm-api --bin crdgen

## lint: formatting, clippy (host, guests and the backend template guests/template), CRD drift.
lint: setup
	$(CARGO) fmt --all -- --check
	cd guests && $(CARGO) fmt -- --check
	cd fuzz && $(CARGO) fmt -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd guests && CARGO_TARGET_DIR=$(DANM_GUESTS_TARGET_DIR) $(CARGO) clippy --workspace --all-targets -- -D warnings
	cd guests/template && $(CARGO) fmt -- --check
	cd guests/template && CARGO_TARGET_DIR=$(DANM_GUESTS_TARGET_DIR) $(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) run -q -p danm-api --bin crdgen -- --check

## unit: pure crates, fakes, guest logic natively, plugin runtime against the built .wasm files; then the CNI flow,
## netns, libcni and new-backend tests once more with their networks in the blocks IPAM mode (the first run uses
## DANM's bitmaps).
## The lab servers of these runs record each component's API calls (by User-Agent) for `make rbac`.
unit: guests
	cd guests && CARGO_TARGET_DIR=$(DANM_GUESTS_TARGET_DIR) $(CARGO) test --workspace
	cd guests/template && CARGO_TARGET_DIR=$(DANM_GUESTS_TARGET_DIR) $(CARGO) test
	rm -f $(RBAC_AUDIT)
	DANM_LAB_AUDIT=$(RBAC_AUDIT) $(CARGO) test --workspace
	DANM_LAB_AUDIT=$(RBAC_AUDIT) DANM_TEST_IPAM_MODE=blocks $(CARGO) test -p danm-cni --test flows --test netns --test native_del --test libcni --test new_backend

## rbac: least privilege. The verbs each ServiceAccount holds in deploy/ against the API calls its component made in
## the last `make unit` (the lab's audit, $(RBAC_AUDIT), by User-Agent: the binaries, and component code that tests
## run in-process on a client named after the component): nothing granted unused, nothing used ungranted.
rbac:
	DANM_RBAC_AUDIT=$(RBAC_AUDIT) $(CARGO) test -p danm-lab --test rbac -- --ignored --nocapture

## fuzz: every cargo-fuzz target for FUZZ_SECONDS (default 20) each, on the stable toolchain (fuzz/run.sh says how).
## Cost in CI: 7 targets x 20 s = 140 s of runs, plus the instrumented release build of fuzz/ (about 8 CPU-minutes
## from scratch, most of it the lab server's dependencies; seconds when ~/.cache/danm-fuzz-target is reused).
fuzz: setup
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh

## netns: real namespaces and links (root); the tests print why they skip otherwise. Part of `unit`'s cargo run;
## this target runs only them.
netns: guests
	$(CARGO) test --workspace -- netns kernel

## e2e: the lab end-to-end tier (lab API server, webhook, controllers, danm invoked as kubelet does).
e2e: guests
	$(CARGO) test -p danm-lab --tests

## bench: benchmarks print ratios against a baseline measured in the same run.
bench: guests
	$(CARGO) bench --workspace

## kernel-lane: tests that need ipvlan, 802.1q vlan and dummy links, run in a qemu VM on Debian's kernel
## (lane/README.md). Fails, never skips, when the VM cannot boot.
kernel-lane: setup guests
	@bash lane/run.sh

## images: the images deploy/ names (danm/cni, danm/netwatcher, danm/svcwatcher, danm/webhook) and the sandbox image
## danm/pause, built with buildah from this build's binaries and plugins into OCI archives in build/images.
images: guests
	$(CARGO) build --workspace --bins
	bash deploy/images/build.sh build/images

## runtime-e2e: containerd's CRI plugin drives danm (root): the installer's CNI config, the images built with buildah,
## a CRI client playing kubelet against the lab API server; prints its figures (host/cni/tests/runtime).
runtime-e2e: guests
	$(CARGO) build --workspace --bins
	$(CARGO) test -p danm-cni --test runtime -- --ignored --nocapture

## test: every tier CI runs (the README's test command).
test: lint unit rbac runtime-e2e fuzz kernel-lane

## lab: the main job, the local lab demo.
lab: guests
	$(CARGO) build --workspace --bins
	@bash scripts/lab-demo.sh
