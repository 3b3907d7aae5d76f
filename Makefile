# litefleet — see README.md. Tools (the S3 server, litestream peers, freeze)
# are built into .tools/bin, which git ignores.
GO        ?= go
TOOLS     := .tools/bin
TEST_ARGS ?=

.PHONY: all build tools test test-short demo lint bench bench-ls clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -o bin/litefleet ./cmd/litefleet

tools:
	@scripts/tools.sh

# The README's test command: unit and integration tests, race detector on,
# against a real S3 server on 127.0.0.1 that this target starts and stops.
test: tools
	@CGO_ENABLED=1 scripts/with-s3.sh $(GO) test -race -count=1 -timeout 25m $(TEST_ARGS) ./...

# Fast tests only: no S3 server, no peers.
test-short:
	$(GO) test -short ./...

demo: tools build
	@$(GO) run ./demo

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@latest ./...

bench: tools build
	@scripts/with-s3.sh $(GO) test -run '^$$' -bench . -benchmem ./...

# ls over 10,000 tenants (local and S3): wall time and peak RSS.
bench-ls: tools build
	@scripts/with-s3.sh $(GO) run ./bench/lsbench -tenants 10000

clean:
	rm -rf bin .demo
