# netagent build. `make` builds bin/netagent and bin/netagentctl;
# `sudo make check` / `sudo make demo` install their own dependencies first.
CC      ?= cc
BUILD   ?= build
# Where the binaries go; a helper build elsewhere: make BUILD=build/x BIN=build/x/bin
BIN     ?= bin
PKGS    := libuv openssl jansson libnl-3.0 libnl-route-3.0 libmnl libnftnl libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -I. $(PKG_CFLAGS) $(CFLAGS) -MMD -MP
LDLIBS  := $(PKG_LIBS) -lhttp_parser -lpthread

CORE_SRC := $(filter-out netagent/main.c,$(wildcard netagent/*.c))
CLI_SRC  := $(wildcard netagent/cli/*.c)
MOD_SRC  := $(wildcard vxlan/*.c vip/*.c provision/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
CORE_OBJ := $(call obj,$(CORE_SRC))
MOD_OBJ  := $(call obj,$(MOD_SRC))
CLI_OBJ  := $(call obj,$(CLI_SRC))
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all deps check unit unit-asan asan-daemon integration demo tour bench fuzz fuzz-build format clean
MON_SRC := $(wildcard provision/monitor/*.c)
all: $(BIN)/netagent $(BIN)/netagentctl $(if $(MON_SRC),$(BIN)/netagent-monitor)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BIN)/netagent: $(call obj,netagent/main.c) $(MOD_OBJ) $(CORE_OBJ)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The per-container monitor (runc's parent, conmon-like): small and static in
# what it links, so it keeps running whatever happens to the agent.
$(BIN)/netagent-monitor: $(call obj,$(MON_SRC)) $(call obj,netagent/err.c netagent/log.c)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The CLI links only what it needs from the core: errors, validation, logging.
$(BIN)/netagentctl: $(CLI_OBJ) $(call obj,netagent/err.c netagent/validate.c netagent/log.c)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(CORE_OBJ) $(MOD_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS) -lcmocka

deps:
	./scripts/deps.sh

unit: $(UNIT_BIN)
	@./tests/run.sh --unit $(BUILD)/tests

# The same unit tests under AddressSanitizer + UndefinedBehaviorSanitizer.
unit-asan:
	$(MAKE) --no-print-directory BUILD=build/asan \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  LDFLAGS="-fsanitize=address,undefined" build/asan/tests-built

build/asan/tests-built: $(UNIT_BIN)
	@touch $@

# The daemon itself under ASan+UBSan, for tests/integration/test_sanitized_daemon.sh.
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
asan-daemon:
	$(MAKE) --no-print-directory BUILD=build/asan CFLAGS="$(SAN_FLAGS)" \
	  LDFLAGS="-fsanitize=address,undefined" build/asan/bin/netagent

build/asan/bin/netagent: $(call obj,netagent/main.c) $(MOD_OBJ) $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

check: deps
	$(MAKE) --no-print-directory all
	$(MAKE) --no-print-directory $(UNIT_BIN)
	$(MAKE) --no-print-directory unit-asan
	./tests/run.sh --all

integration: all
	./tests/run.sh --integration

demo: deps
	$(MAKE) --no-print-directory all
	./scripts/demo.sh

# The overlay networks alone, step by step, on simulated hosts (scripts/tour.sh).
tour: deps
	$(MAKE) --no-print-directory all
	./scripts/tour.sh

bench: deps
	$(MAKE) --no-print-directory all
	./bench/run.sh

FUZZ_SECONDS ?= 60
fuzz: deps
	$(MAKE) --no-print-directory -C . fuzz-build
	./tests/fuzz/run.sh $(FUZZ_SECONDS)

# The request path only: HTTP assembly, route table, JSON and field validation.
FUZZ_SRC := netagent/api.c netagent/http_msg.c netagent/validate.c netagent/err.c netagent/log.c
fuzz-build:
	@mkdir -p build/fuzz
	clang -std=gnu11 -D_GNU_SOURCE -I. $(PKG_CFLAGS) -O1 -g \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -o build/fuzz/fuzz_request tests/fuzz/fuzz_request.c $(FUZZ_SRC) \
	  $$(pkg-config --libs jansson) -lhttp_parser

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
