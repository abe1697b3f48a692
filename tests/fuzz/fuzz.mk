# libFuzzer targets (tests/fuzz/README.md). Included by the top Makefile after its flags and
# source lists; builds with clang into build/fuzz/, apart from gcc's build/release and
# build/debug.
#
#   make fuzz FUZZ_SECONDS=N        every target for N seconds (default 60) on its corpus
#   make fuzz-smoke                 every target for FUZZ_SMOKE_SECONDS (5): part of make test
#   make fuzz-<target>              one target (fuzz-fuzz_ws), FUZZ_SECONDS long
#   make fuzz-build                 build the targets only
#
# Each run copies the seed corpus (tests/fuzz/corpus/<target>/) and the regression inputs
# (tests/fuzz/crashes/<target>/) into build/fuzz/corpus-<target>/, which keeps what the
# fuzzer finds between runs; the repository copy stays clean. A crash, a leak, a timeout or
# a sanitizer report fails the run and leaves the input in build/fuzz/artifacts/<target>/.

FUZZ_CC := clang
FUZZ_DIR := build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 5
# Extra libFuzzer flags for every run (for example -jobs=2 -workers=2, or -max_len=16384).
FUZZ_FLAGS ?=
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# Extra defines for the targets, for a check kept behind an #ifdef while its bug is open
# (README, open findings); after changing them, rm -r build/fuzz/tests so the targets are
# compiled again.
FUZZ_DEFS ?=
FUZZ_CFLAGS := $(BASE_CFLAGS) -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(FUZZ_DEFS)
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
# Per run: a hang of 10 s or 2 GiB of RSS is a bug; each input is run with fresh malloc
# limits so a deflate bomb is reported, not swapped.
FUZZ_RUN_FLAGS := -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1

.PHONY: fuzz fuzz-smoke fuzz-build $(FUZZ_TARGETS:%=fuzz-%)

$(FUZZ_DIR)/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/libproto.a: $(PROTO_SRC:%.c=$(FUZZ_DIR)/%.o)
	$(AR) rcs $@ $^

$(FUZZ_DIR)/libgateway.a: $(GATEWAY_SRC:%.c=$(FUZZ_DIR)/%.o)
	$(AR) rcs $@ $^

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/tests/fuzz/fuzz_%.o $(FUZZ_DIR)/libgateway.a \
		$(FUZZ_DIR)/libproto.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS)

.SECONDARY: $(FUZZ_TARGETS:%=$(FUZZ_DIR)/tests/fuzz/%.o)

-include $(shell find $(FUZZ_DIR) -name '*.d' 2>/dev/null)

fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_DIR)/%)

# $(1): seconds, $(2): targets, $(3): run name (the log is build/fuzz/<target>-<name>.log, so a
# smoke run never writes into the log of a long run going on beside it). Each target gets the
# seeds and regression inputs copied into its working corpus, then fuzzes (libFuzzer runs
# every corpus input first, so an old crash fails at once) and prints its executions and the
# CPU time it used (bash's time: the top Makefile sets SHELL). Every target runs; the recipe
# fails at the end if any failed.
define fuzz_run
	@failed=0; for t in $(2); do \
		log=$(FUZZ_DIR)/$$t-$(3).log; \
		mkdir -p $(FUZZ_DIR)/corpus-$$t $(FUZZ_DIR)/artifacts/$$t; \
		for d in tests/fuzz/corpus/$$t tests/fuzz/crashes/$$t; do \
			if [ -d $$d ]; then cp -p $$d/* $(FUZZ_DIR)/corpus-$$t/ 2>/dev/null; fi; \
		done; \
		dict=; if [ -f tests/fuzz/$$t.dict ]; then dict=-dict=tests/fuzz/$$t.dict; fi; \
		echo "== $$t: $(1) s"; \
		TIMEFORMAT="$$t: cpu %U s user + %S s sys, %R s wall"; \
		if time $(FUZZ_DIR)/$$t $(FUZZ_RUN_FLAGS) -max_total_time=$(1) $$dict \
				-artifact_prefix=$(FUZZ_DIR)/artifacts/$$t/ $(FUZZ_FLAGS) \
				$(FUZZ_DIR)/corpus-$$t > $$log 2>&1; then \
			grep -a -E '^(Done|stat::peak_rss_mb)' $$log | tr -s '\n ' ' '; echo; \
		else \
			tail -n 60 $$log; \
			echo "$$t: FAILED (log $$log, input in $(FUZZ_DIR)/artifacts/$$t/)"; \
			failed=$$((failed + 1)); \
		fi; \
	done; \
	if [ $$failed -ne 0 ]; then echo "$$failed fuzz targets failed"; exit 1; fi
endef

fuzz: fuzz-build
	$(call fuzz_run,$(FUZZ_SECONDS),$(FUZZ_TARGETS),fuzz)

fuzz-smoke: fuzz-build
	$(call fuzz_run,$(FUZZ_SMOKE_SECONDS),$(FUZZ_TARGETS),smoke)

$(foreach t,$(FUZZ_TARGETS),$(eval fuzz-$(t): $(FUZZ_DIR)/$(t) ; \
	$$(call fuzz_run,$$(FUZZ_SECONDS),$(t),fuzz)))
