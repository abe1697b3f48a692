# chatbroker: build, run and test.
#
#   make            release build in build/release (-O2 -g)
#   make debug      sanitizer build in build/debug (ASan + UBSan), what the tests use
#   make run        install what is missing, build, serve on http://127.0.0.1:8080/
#   make test       install what is missing, build, run every suite
#   make browser    the page's tests in headless Chromium (part of make test)
#   make deps       install the Debian packages the project needs (root), or say which
#   make bench      benchmark against peers, report in build/bench/
#   make soak       long-uptime soak with faults (SOAK_MINUTES=20), report in build/soak/
#   make fuzz       every libFuzzer target for FUZZ_SECONDS (fuzz-smoke: 5 s each, in make test)
#   make format     rewrite sources with clang-format; format-check only checks
#   make clean

SHELL := /bin/bash
CC ?= cc
ifeq ($(origin CC),default)
CC := gcc
endif
PYTHON := /usr/bin/python3
CLANG_FORMAT := clang-format-14

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
	-Wpointer-arith -Wwrite-strings -Wvla -Wundef -Wcast-align
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -MMD -MP -I.
RELEASE_CFLAGS := $(BASE_CFLAGS) -O2 -g
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
DEBUG_CFLAGS := $(BASE_CFLAGS) -O0 -g3 $(SAN)

LIBS := $(shell pkg-config --libs libevent libevent_openssl hiredis libcjson libssl libcrypto zlib 2>/dev/null) \
	-lwslay -lhttp_parser -lm
TEST_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

PROTO_SRC := proto/utf8.c proto/json.c proto/proto.c proto/channel.c proto/xalloc.c proto/client.c \
	proto/redisurl.c proto/jwt.c
GATEWAY_SRC := gateway/util.c gateway/log.c gateway/config.c gateway/http.c \
	gateway/handshake.c gateway/ws.c gateway/static.c gateway/frame.c gateway/bus.c gateway/rooms.c gateway/session.c gateway/conn.c gateway/worker.c gateway/metrics.c gateway/master.c gateway/deflate.c gateway/tls.c gateway/limits.c
GATEWAY_MAIN := gateway/main.c
TOOLS := chat-bench chatcat chat-tail chat-token
TOOLS_LIB_SRC := broker-tools/wsclient.c broker-tools/wsdeflate.c broker-tools/options.c broker-tools/term.c \
	broker-tools/chatview.c broker-tools/roomlist.c broker-tools/linein.c
UNIT_TESTS := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))

# Debian packages: what building and running need, and what the test suites add.
DEPS_RUN := gcc make pkg-config libevent-dev libwslay-dev libcjson-dev libhiredis-dev \
	libssl-dev libhttp-parser-dev zlib1g-dev uthash-dev redis-server redis-tools
DEPS_TEST := $(DEPS_RUN) libcmocka-dev python3 python3-pytest python3-websockets \
	valgrind clang-format-14 clang libclang-rt-14-dev curl openssl chromium chromium-driver \
	python3-selenium \
	fonts-noto-color-emoji

.PHONY: all release debug run test deps deps-run deps-bench unit integration browser format \
	format-check clean valgrind bench cluster cluster-native deps-cluster deps-docker \
	soak deps-soak
.DEFAULT_GOAL := all

all: release

# ---- objects, per mode -------------------------------------------------------------------

define mode_rules
build/$(1)/%.o: %.c
	@mkdir -p $$(@D)
	$$(CC) $$($(2)) -c $$< -o $$@

build/$(1)/libproto.a: $$(PROTO_SRC:%.c=build/$(1)/%.o)
	$$(AR) rcs $$@ $$^

build/$(1)/libgateway.a: $$(GATEWAY_SRC:%.c=build/$(1)/%.o)
	$$(AR) rcs $$@ $$^

build/$(1)/chat-gateway: build/$(1)/gateway/main.o build/$(1)/libgateway.a build/$(1)/libproto.a
	$$(CC) $$($(2)) -o $$@ $$^ $$(LIBS)

build/$(1)/libtools.a: $$(TOOLS_LIB_SRC:%.c=build/$(1)/%.o)
	$$(AR) rcs $$@ $$^

build/$(1)/%: build/$(1)/broker-tools/%.o build/$(1)/libtools.a build/$(1)/libproto.a
	$$(CC) $$($(2)) -o $$@ $$^ $$(LIBS)

-include $$(shell find build/$(1) -name '*.d' 2>/dev/null)
endef
$(eval $(call mode_rules,release,RELEASE_CFLAGS))
$(eval $(call mode_rules,debug,DEBUG_CFLAGS))

release: build/release/chat-gateway $(TOOLS:%=build/release/%)
debug: build/debug/chat-gateway $(TOOLS:%=build/debug/%) $(UNIT_TESTS:%=build/debug/tests/%)

build/debug/tests/test_%: build/debug/tests/unit/test_%.o build/debug/libgateway.a \
		build/debug/libtools.a build/debug/libproto.a
	$(CC) $(DEBUG_CFLAGS) -o $@ $^ $(LIBS) $(TEST_LIBS)

# ---- set-up ------------------------------------------------------------------------------

# Installs what is missing (apt-get update first, once), or names the packages when not root.
define install_missing
	@missing=""; for p in $(1); do \
		dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' \
			|| missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "missing Debian packages:$$missing"; \
		echo "install them with: sudo apt-get install -y$$missing"; exit 1; \
	fi; \
	echo "installing:$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -q && apt-get install -y -q --no-install-recommends $$missing </dev/null
endef

deps-run:
	$(call install_missing,$(DEPS_RUN))

deps:
	$(call install_missing,$(DEPS_TEST))

# ---- run ---------------------------------------------------------------------------------

run: deps-run
	@$(MAKE) --no-print-directory release
	exec gateway/run-local.sh

# ---- tests -------------------------------------------------------------------------------

export ASAN_OPTIONS := detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS := print_stacktrace=1:halt_on_error=1

test: deps deps-cluster
	@$(MAKE) --no-print-directory format-check
	@$(MAKE) --no-print-directory release debug
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory browser
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory cluster

# Every suite runs; the target fails at the end if any did.
unit: $(UNIT_TESTS:%=build/debug/tests/%)
	@failed=0; for t in $^; do echo "== $$t"; $$t || failed=$$((failed + 1)); done; \
	if [ $$failed -ne 0 ]; then echo "$$failed unit test binaries failed"; exit 1; fi

integration: build/debug/chat-gateway
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# The cluster suites (tests/cluster): natively, three gateways behind a real haproxy; in
# containers, compose.yaml itself (skipped, saying why, where no Docker engine runs; the
# first run makes debian:bookworm-slim with debootstrap and builds the images).
cluster: build/debug/chat-gateway
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/cluster

cluster-native: build/debug/chat-gateway
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/cluster/test_native.py

# haproxy, debootstrap and openssl (certificates for the TLS tests) always; Docker and
# compose only where no docker command exists (docker-ce's packages conflict with Debian's
# docker.io), and compose where neither `docker compose` nor `docker-compose` works.
DEPS_CLUSTER := haproxy debootstrap openssl

deps-cluster:
	$(call install_missing,$(DEPS_CLUSTER))
	@if ! command -v docker >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory deps-docker PKGS="docker.io docker-compose"; \
	elif ! docker compose version >/dev/null 2>&1 && \
		! command -v docker-compose >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory deps-docker PKGS="docker-compose"; \
	fi

deps-docker:
	$(call install_missing,$(PKGS))

# The page in Debian's Chromium (headless) against a redis-server and two debug gateways;
# screenshots in build/test-output/browser/.
browser: build/debug/chat-gateway
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/browser

valgrind: release
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/integration/test_valgrind.py

# ---- benchmarks --------------------------------------------------------------------------

# Side by side with the peers (Centrifugo, gorilla/websocket hubs; built with Go from the
# module proxy when Go is there): report in build/bench/report.md. BENCH_ARGS=--quick for a
# three-minute version.
bench: deps-bench
	@$(MAKE) --no-print-directory release
	$(PYTHON) broker-tools/bench/run.py --report build/bench/report.md $(BENCH_ARGS)
	$(PYTHON) broker-tools/bench/echo_bench.py --report build/bench/echo.md

deps-bench:
	$(call install_missing,$(DEPS_RUN) python3-matplotlib linux-perf)

# ---- soak (tests/soak/README.md) -----------------------------------------------------------

# A bounded long-uptime run (not part of make test): a private redis-server, a release and a
# sanitizer gateway, churning clients and scheduled Redis and gateway restarts; report and
# plot in build/soak/. 20 minutes; SOAK_MINUTES=N for another length, SOAK_ARGS=--quick for
# a 3-minute check.
soak: deps-soak
	@$(MAKE) --no-print-directory build/release/chat-gateway build/debug/chat-gateway
	$(PYTHON) tests/soak/soak.py $(if $(SOAK_MINUTES),--minutes $(SOAK_MINUTES)) $(SOAK_ARGS)

deps-soak:
	$(call install_missing,$(DEPS_RUN) python3 python3-websockets python3-matplotlib)

# ---- fuzzing (tests/fuzz/README.md): make fuzz FUZZ_SECONDS=N, make fuzz-smoke ----------

# Optional, so a build from a partial tree (the gateway image copies no tests/) still works.
-include tests/fuzz/fuzz.mk

# ---- formatting --------------------------------------------------------------------------

FORMAT_FILES = $(wildcard gateway/*.[ch] proto/*.[ch] broker-tools/*.[ch] tests/unit/*.[ch] \
	tests/fuzz/*.[ch])

format:
	$(CLANG_FORMAT) -i $(FORMAT_FILES)

format-check:
	$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf build
