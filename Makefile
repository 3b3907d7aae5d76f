# litefleet — see README.md. Tools (the S3 server, litestream peers, freeze)
# are built into .tools/bin, which git ignores.
GO        ?= go
TOOLS     := .tools/bin
TEST_ARGS ?=

.PHONY: all build tools tmux test fuzz test-short demo lint bench bench-ls bench-fleet chaos screenshots clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -o bin/litefleet ./cmd/litefleet

tools:
	@scripts/tools.sh

# The terminal UI's end-to-end test drives the real binary in tmux.
tmux:
	@command -v tmux >/dev/null || (apt-get update && apt-get install -y tmux)

# freeze renders terminal screens to PNG; built from source, never committed.
FREEZE := $(TOOLS)/freeze
$(FREEZE):
	GOBIN=$(CURDIR)/$(TOOLS) $(GO) install github.com/charmbracelet/freeze@v0.2.2

# The README's test command: unit and integration tests, race detector on,
# against a real S3 server on 127.0.0.1 that this target starts and stops.
# Then every fuzz target of a parser of untrusted bytes, a few seconds each
# (FUZZTIME, scripts/fuzz.sh).
test: tools tmux
	@CGO_ENABLED=1 scripts/with-s3.sh $(GO) test -race -count=1 -timeout 25m $(TEST_ARGS) ./...
	@scripts/fuzz.sh

fuzz:
	@scripts/fuzz.sh

# Fast tests only: no S3 server, no peers.
test-short:
	$(GO) test -short ./...

demo: tools build
	@$(GO) run ./demo

# staticcheck is pinned so that a new release cannot fail a clean tree.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench: tools build
	@scripts/with-s3.sh $(GO) test -run '^$$' -bench . -benchmem ./...

# ls over 10,000 tenants (local and S3): wall time and peak RSS; then
# 10,000 tenants replicated by 10 hosts, ls over the bucket alone: wall
# time and S3 requests, from the host records and with -scan.
bench-ls: tools build
	@scripts/with-s3.sh $(GO) run ./bench/lsbench -tenants 10000
	@scripts/with-s3.sh $(GO) run ./bench/lsbench -tenants 10000 -hosts 10

# A fleet of idle and writing tenants under litefleet replicate -dir and
# litestream replicate (issue 9); flags in BENCH_FLEET_ARGS (go run ./bench/fleet -h).
BENCH_FLEET_ARGS ?= -n 1000,10000
bench-fleet: tools build
	@$(GO) run ./bench/fleet $(BENCH_FLEET_ARGS)

# The fault harness (issue 17): litefleet replicate hosts behind fault
# proxies, writers, partitions, pauses, kills, skew; then the invariants.
# Flags in CHAOS_ARGS (go run ./bench/chaos -h); exit 1 if one fails.
CHAOS_ARGS ?= -seed 1 -duration 10m
chaos: tools build
	@$(GO) run ./bench/chaos $(CHAOS_ARGS)

# The README's screenshots: golden screens of the terminal UI (120x36, fixed
# clock and colour profile), checked by the tests first, then rendered to PNG.
SCREENSHOTS := table detail restore_confirm validate
screenshots: $(FREEZE)
	$(GO) test ./tui -run 'TestGolden' -count=1
	@mkdir -p screenshots
	@for s in $(SCREENSHOTS); do \
		out=screenshots/$${s%_confirm}.png; \
		$(FREEZE) tui/testdata/TestGolden/$${s}_120x36.golden --language ansi --window --output $$out >/dev/null || exit 1; \
		echo "screenshots: $$out"; \
	done

clean:
	rm -rf bin .demo
