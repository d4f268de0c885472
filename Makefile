# liveingest — `make run` starts dev mode; `make test` installs what the tests
# need and runs them all.

GO            ?= go
GOBIN         := $(shell $(GO) env GOPATH)/bin
MINIO_MODULE  := github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c
APT_PACKAGES  := ffmpeg redis-server srt-tools libsrt-gnutls-dev pkg-config gcc chromium cadaver rclone
FUZZTIME      ?= 30s
TEST_TIMEOUT  ?= 30m
export PATH   := $(GOBIN):$(PATH)

.PHONY: run build test deps vet unit fuzz bench bench-srt bench-s3 bench-mediamtx bench-deps

## run: start `liveingest dev` (everything in one process, no other service needed)
run:
	$(GO) run ./cmd/liveingest dev

## build: the binary in bin/
build:
	$(GO) build -o bin/liveingest ./cmd/liveingest

## test: deps, vet, every test under -race, then the fuzz targets for $(FUZZTIME) each
test: deps vet unit fuzz

## deps: install what the tests start or drive, where missing (Debian packages; MinIO from source)
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@if [ ! -x "$(GOBIN)/minio" ] && ! command -v minio >/dev/null 2>&1; then \
		echo "building MinIO (a few minutes, once)"; \
		GOFLAGS=-buildvcs=false $(GO) install $(MINIO_MODULE); \
	fi
	@echo "deps ok: $$(redis-server --version | cut -d' ' -f3) $$(ffmpeg -version | head -1 | cut -d' ' -f1-3) minio $$(command -v minio)"

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

unit:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

## fuzz: every fuzz target for $(FUZZTIME)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseRelPath$$' -fuzztime $(FUZZTIME) ./origin/keys
	$(GO) test -run '^$$' -fuzz '^FuzzValidateName$$' -fuzztime $(FUZZTIME) ./origin/slots
	$(GO) test -run '^$$' -fuzz '^FuzzPushPath$$' -fuzztime $(FUZZTIME) ./edge/push
	$(GO) test -run '^$$' -fuzz '^FuzzParseStreamID$$' -fuzztime $(FUZZTIME) ./edge/srt
	$(GO) test -run '^$$' -fuzz '^FuzzHandshake$$' -fuzztime $(FUZZTIME) ./edge/srt
	$(GO) test -run '^$$' -fuzz '^FuzzServerConn$$' -fuzztime $(FUZZTIME) ./edge/rtmp
	$(GO) test -run '^$$' -fuzz '^FuzzGuardMirror$$' -fuzztime $(FUZZTIME) ./edge/rtmp
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) ./edge/tsdemux
	$(GO) test -run '^$$' -fuzz '^FuzzRequest$$' -fuzztime $(FUZZTIME) ./edge/whip

# The load benchmark (docs/performance.md). BENCH_CPU is the one core the
# servers are pinned to; the generator runs on the other cores. BENCH_N,
# BENCH_DURATION and BENCH_FLAGS apply to bench and bench-srt alike.
# BENCH_LONG is make bench's long run at BENCH_LONG_N after the others,
# reported minute by minute (0: none); BENCH_PPROF is where make bench puts
# the CPU and heap profiles of the liveingest runs (empty: none).
BENCH_N        ?= 16,64
BENCH_DURATION ?= 40s
BENCH_CPU      ?= 0
BENCH_FLAGS    ?= --find-max
BENCH_LONG     ?= 10m
BENCH_LONG_N   ?= 64
BENCH_PPROF    ?= bin/bench-pprof
# MediaMTX for make bench-mediamtx (never installed by make; docs/performance.md builds v1.15.3).
MEDIAMTX       ?= $(shell command -v mediamtx 2>/dev/null)
BENCH_PACKAGES := ffmpeg nginx libnginx-mod-rtmp
# The generator's CPUs: every one but BENCH_CPU (none pinned on one core).
BENCH_GEN       = $(shell n=$$(nproc); if [ "$$n" -ge 2 ]; then echo "taskset -c $$(seq 0 $$((n-1)) | grep -vx '$(BENCH_CPU)' | paste -sd,)"; fi)

## bench-deps: ffmpeg and nginx with the RTMP module (the reference server), where missing
# (a temporary policy-rc.d keeps the nginx package from starting a system nginx on :80)
bench-deps:
	@missing=""; for p in $(BENCH_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		policy=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
			policy=1; printf '#!/bin/sh\nexit 101\n' | $$SUDO tee /usr/sbin/policy-rc.d >/dev/null; $$SUDO chmod +x /usr/sbin/policy-rc.d; \
		fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
			|| echo "bench-deps: could not install$$missing; make bench skips what needs them"; \
		[ -z "$$policy" ] || $$SUDO rm -f /usr/sbin/policy-rc.d; \
	fi

## bench: RTMP load benchmark at N=$(BENCH_N) on one core against liveingest and nginx-rtmp, then the highest clean N,
## then a $(BENCH_LONG) run at N=$(BENCH_LONG_N) minute by minute (about 21 minutes in all); profiles in $(BENCH_PPROF);
## updates docs/performance.md. e.g. make bench BENCH_LONG=0 BENCH_PPROF=   (no long run, no profiles: about 10 minutes)
bench: bench-deps
	$(GO) build -o bin/liveingest ./cmd/liveingest
	$(GO) build -o bin/liveingest-bench ./cmd/liveingest-bench
	$(BENCH_GEN) bin/liveingest-bench --target liveingest --binary bin/liveingest --cpus $(BENCH_CPU) \
		--n $(BENCH_N) --compare nginx --duration $(BENCH_DURATION) $(BENCH_FLAGS) \
		--long-duration $(BENCH_LONG) --long-n $(BENCH_LONG_N) $(if $(BENCH_PPROF),--pprof $(BENCH_PPROF)) \
		--json bin/bench-report.json --doc docs/performance.md

## bench-mediamtx: liveingest and MediaMTX (MEDIAMTX=path, recording fMP4 to disk) side by side at N=$(BENCH_N), the
## clip without B-frames (MediaMTX v1.15.3 cannot record them); bin/bench-mediamtx-report.json, the doc untouched.
bench-mediamtx:
	@$(MAKE) --no-print-directory bench-deps BENCH_PACKAGES=ffmpeg
	@[ -n "$(MEDIAMTX)" ] || { echo "bench-mediamtx: no mediamtx; MEDIAMTX=/path/to/mediamtx (docs/performance.md)"; exit 1; }
	$(GO) build -o bin/liveingest ./cmd/liveingest
	$(GO) build -o bin/liveingest-bench ./cmd/liveingest-bench
	$(BENCH_GEN) bin/liveingest-bench --target liveingest --binary bin/liveingest --cpus $(BENCH_CPU) \
		--n $(BENCH_N) --compare mediamtx --mediamtx $(MEDIAMTX) --no-bframes --duration $(BENCH_DURATION) \
		--json bin/bench-mediamtx-report.json

## bench-s3: the RTMP load benchmark with the edge writing to a MinIO over S3 (started with Redis and an origin by the
## tool; MinIO from make deps), each N also into dev's disk store (--compare disk) for the S3/disk ratios; the same
## BENCH_N, duration and flags; updates the S3 section of docs/performance.md and bin/bench-s3-report.json.
bench-s3:
	@$(MAKE) --no-print-directory bench-deps BENCH_PACKAGES=ffmpeg
	$(GO) build -o bin/liveingest ./cmd/liveingest
	$(GO) build -o bin/liveingest-bench ./cmd/liveingest-bench
	$(BENCH_GEN) bin/liveingest-bench --store s3 --target liveingest --binary bin/liveingest --cpus $(BENCH_CPU) \
		--n $(BENCH_N) --compare disk --duration $(BENCH_DURATION) $(BENCH_FLAGS) \
		--json bin/bench-s3-report.json --doc docs/performance.md

## bench-srt: SRT load benchmark: the same N (BENCH_N), duration and flags (BENCH_FLAGS, default --find-max) with SRT
## callers into liveingest, each N also over RTMP into the same binary (--compare rtmp: nginx has no SRT) for the
## SRT/RTMP ratios; updates the SRT section of docs/performance.md (not the RTMP one) and bin/bench-srt-report.json.
## e.g. make bench-srt BENCH_N=16,64 BENCH_FLAGS=   (no --find-max)
bench-srt:
	@$(MAKE) --no-print-directory bench-deps BENCH_PACKAGES=ffmpeg
	$(GO) build -o bin/liveingest ./cmd/liveingest
	$(GO) build -o bin/liveingest-bench ./cmd/liveingest-bench
	$(BENCH_GEN) bin/liveingest-bench --protocol srt --target liveingest --binary bin/liveingest --cpus $(BENCH_CPU) \
		--n $(BENCH_N) --compare rtmp --duration $(BENCH_DURATION) $(BENCH_FLAGS) \
		--json bin/bench-srt-report.json --doc docs/performance.md
