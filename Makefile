# Zombi — the two commands a new user needs are `make run` and `make test`.
GO        ?= go
BIN       ?= bin/zombi
PKGS      := ./...
# Packages with concurrent code are also run under the race detector.
RACE_PKGS := ./vfs/... ./segment/... ./index/... ./engine/... ./httpd/... ./bench/...
FUZZTIME  ?= 10s

.PHONY: build run test test-short race fuzz-short fuzz bench bench-engine bench-flush bench-http bench-cold bench-cluster bench-commits bench-recycle vet fmt clean docs install install-files uninstall

build:
	$(GO) build -o $(BIN) ./cmd/zombi

run: build
	./$(BIN) serve

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

# The full suite: unit and integration tests, the race detector on the
# concurrent packages, and a short run of every fuzz target.
test: vet
	$(GO) test -count=1 $(PKGS)
	$(GO) test -count=1 -race $(RACE_PKGS)
	$(GO) test -count=1 -race -run '^TestSoak$$' ./soak
	$(MAKE) fuzz-short

race:
	$(GO) test -count=1 -race $(RACE_PKGS)

# Each fuzz target runs briefly in `make test`: a count of executions sized
# to ~10 s here (the third field of FUZZ_TARGETS), or FUZZTIME when one is
# given (`make fuzz-short FUZZTIME=30s`). A count, not a duration: with a
# duration Go's fuzzing coordinator can fail a clean run with a bare
# "context deadline exceeded" when a worker is mid-execution at the
# deadline (a known race in the coordinator; it failed CI here once).
# `make fuzz` runs every target until it has made FUZZ_LONGTIME executions
# (default 1M; or for FUZZTIME when one is given: `make fuzz FUZZTIME=5m`)
# and prints the executions of each. A fuzzed parser lives in a package
# that links little: the fuzzer instruments and rebuilds every package a
# target links, which for httpd (arrow, iceberg, fasthttp, …) took ~11
# minutes here from a cold cache, and ran ~1K execs/s. So the write bodies
# are decoded in httpd/wire, and the read query, Accept header, table name
# and bearer tokens are parsed in httpd/param (the standard library only;
# its tests add engine): ~30 s cold, ~60K execs/s.
FUZZ_TARGETS := segment:FuzzOpen:400000x index:FuzzUnmarshal:400000x \
	httpd/wire:FuzzJSONEvent:400000x httpd/wire:FuzzJSONBulk:400000x httpd/wire:FuzzProto:200000x \
	httpd/wire:FuzzJSONSingleVsBulk:250000x httpd/wire:FuzzProtoSingleVsBulk:150000x \
	httpd/param:FuzzReadQuery:500000x httpd/param:FuzzTableName:550000x httpd/param:FuzzBearerToken:550000x \
	columns:FuzzExtract:300000x
FUZZ_SHORT_GIVEN := $(filter command line environment,$(origin FUZZTIME))
FUZZ_LONGTIME ?= $(if $(FUZZ_SHORT_GIVEN),$(FUZZTIME),1000000x)
fuzz-short:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; fn=$${rest%%:*}; n=$${rest#*:}; \
		ft=$(if $(FUZZ_SHORT_GIVEN),$(FUZZTIME),$$n); \
		echo "fuzz $$pkg $$fn ($$ft)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $$ft ./$$pkg || exit 1; \
	done
fuzz:
	@mkdir -p bin/fuzz; : > bin/fuzz/summary; \
	for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; fn=$${rest%%:*}; log=bin/fuzz/$$fn.log; \
		echo "fuzz $$pkg $$fn ($(FUZZ_LONGTIME))"; \
		start=$$(date +%s); \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZ_LONGTIME) ./$$pkg > $$log 2>&1 || { tail -40 $$log; exit 1; }; \
		execs=$$(grep -o 'execs: [0-9]*' $$log | tail -1 | cut -d' ' -f2); \
		printf '%-8s %-24s %10s execs %6ss\n' $$pkg $$fn "$$execs" $$(( $$(date +%s) - start )) >> bin/fuzz/summary; \
	done; \
	echo; echo "executions per fuzz target:"; cat bin/fuzz/summary

# `make bench`: the engine micro-benchmarks side by side with Pebble (the
# bench/peer module, so Pebble never reaches the server binary), then the
# short HTTP suite measured beside its ceilings.
bench: bench-engine bench-flush bench-http

# `make bench-flush`: sealed segments of 82-byte JSON events → Parquet →
# the local warehouse (and MinIO, when built) → Iceberg commit (SQLite),
# in-process, for the event schema (raw) and with four typed columns
# extracted (typed4: ZOMBI_TABLE_SCHEMA), alternating, FLUSH_RUNS runs of
# each, beside the ZSTD codec alone on the payload column (the floor per
# core); events/s, events per CPU-second and Parquet bytes per event per
# run, and the medians (bench/flushtable.sh).
FLUSH_RUNS ?= 5
bench-flush:
	RUNS=$(FLUSH_RUNS) bench/flushtable.sh

bench-engine:
	cd bench/peer && $(GO) run ./cmd/benchtable

# The short HTTP suite: zombi serve (child processes, fresh data dirs on
# 127.0.0.1) beside a do-nothing and a parse-only fasthttp handler,
# alternating, medians of BENCH_RUNS runs of BENCH_DURATION each. The table
# also goes to bench/results/http.md.
BENCH_RUNS     ?= 3
BENCH_DURATION ?= 3s
bench-http: build
	./$(BIN) load --suite --runs $(BENCH_RUNS) --duration $(BENCH_DURATION) --out bench/results/http.md

# `make soak`: the kill -9 soak, SOAK_CYCLES cycles (README, Testing):
# a child zombi serve (fsync=always, cold tier flushing every second) is
# killed with SIGKILL at random moments under load and restarted; every
# acked event must end up in Iceberg once. Prints the counts; exit status
# 1 on a violation. `make test` runs 20 cycles (soak.TestSoak, in go test).
.PHONY: soak
SOAK_CYCLES ?= 200
SOAK_FLAGS  ?=
soak: build
	./$(BIN) soak --cycles $(SOAK_CYCLES) $(SOAK_FLAGS)

# `make bench-cold`: does the cold tier keep up? Bulk load at a fixed rate
# (COLD_RATE req/s × 100 events, COLD_DUR s) into a zombi serve flushing to the local
# warehouse or, with COLD_STORE=minio, to a MinIO started for the run; prints
# the unflushed backlog and RssAnon every 10 s and a verdict.
bench-cold: build
	STORE=$(COLD_STORE) RATE=$(COLD_RATE) DUR=$(COLD_DUR) bench/coldtier.sh
COLD_STORE ?= local
COLD_RATE  ?= 2000
COLD_DUR   ?= 180

# `make bench-recycle`: bulk load with the cold tier on, segment recycling
# on and off (ZOMBI_SEGMENT_RECYCLE), alternating, RECYCLE_RUNS runs of
# RECYCLE_DUR s each; events/s and server CPU per request, medians
# (bench/recycle.sh).
RECYCLE_RUNS ?= 3
RECYCLE_DUR  ?= 8
bench-recycle: build
	RUNS=$(RECYCLE_RUNS) DUR=$(RECYCLE_DUR) bench/recycle.sh

# `make bench-cluster`: 1, 2 and 3 zombi serve behind HAProxy
# (deploy/haproxy.cfg) on one PostgreSQL catalog and one MinIO bucket,
# loaded by zombi load's bulk scenario through the proxy, each node
# flushing every second; alternating runs, medians (README, Running
# several nodes). Needs haproxy, PostgreSQL and MinIO as .ci/run installs.
CLUSTER_RUNS ?= 3
CLUSTER_SECS ?= 8
bench-cluster:
	ZOMBI_BENCH_RUNS=$(CLUSTER_RUNS) ZOMBI_BENCH_SECS=$(CLUSTER_SECS) \
		$(GO) test -count=1 -run '^$$' -bench '^BenchmarkCluster$$' -benchtime 1x -timeout 30m ./cmd/zombi

# `make bench-commits`: Iceberg commits per second to one table through
# the PostgreSQL catalog, 1 vs 3 servers committing at once (catalog
# cost alone, no Parquet); alternating runs, medians.
bench-commits:
	ZOMBI_BENCH_RUNS=$(CLUSTER_RUNS) \
		$(GO) test -count=1 -run '^$$' -bench '^BenchmarkCommitRate$$' -benchtime 1x -timeout 30m ./catalog

# `make docs` regenerates the files rendered from the settings table
# (docs/configuration.md, deploy/zombi.env); a test fails when they are stale.
docs:
	ZOMBI_UPDATE_DOCS=1 $(GO) test -count=1 -run '^TestGeneratedDocs$$' ./cmd/zombi

# `sudo make install`: the binary, the systemd unit, the environment file
# (kept if it exists), the zombi system user and /var/lib/zombi; then
# `systemctl enable --now zombi`. DESTDIR stages the files elsewhere (for a
# package, or a test) and then skips the user, ownership and systemctl
# steps; PREFIX moves the binary.
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
UNITDIR ?= /etc/systemd/system
CONFDIR ?= /etc/zombi
DATADIR := /var/lib/zombi

install: build install-files

install-files:
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/zombi
	install -d $(DESTDIR)$(UNITDIR)
	sed 's#^ExecStart=/usr/local/bin/zombi#ExecStart=$(BINDIR)/zombi#' deploy/zombi.service > $(DESTDIR)$(UNITDIR)/zombi.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/zombi.service
	install -d -m 0750 $(DESTDIR)$(CONFDIR)
	test -e $(DESTDIR)$(CONFDIR)/zombi.env || install -m 0640 deploy/zombi.env $(DESTDIR)$(CONFDIR)/zombi.env
	install -d -m 0750 $(DESTDIR)$(DATADIR)
	@if [ -z "$(DESTDIR)" ]; then \
		getent passwd zombi >/dev/null || useradd --system --user-group --home-dir $(DATADIR) --no-create-home --shell /usr/sbin/nologin zombi; \
		chown zombi:zombi $(DATADIR); \
		chown root:zombi $(CONFDIR) $(CONFDIR)/zombi.env; \
		if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
		echo "installed; now: systemctl enable --now zombi"; \
	fi

# `sudo make uninstall` removes the binary and the unit; the data, the
# configuration and the user stay.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/zombi $(DESTDIR)$(UNITDIR)/zombi.service
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

clean:
	rm -rf bin
