# portcullis build. `make` builds build/portcullis (optimised);
# `make test` installs dependencies, builds the sanitizer build and runs unit
# and end-to-end tests; `make run` starts the example configuration.

PREFIX     ?= /usr/local
CC         ?= cc
LLHTTP_DIR ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
PYTHON     ?= /usr/bin/python3

PKGS     := libevent libevent_openssl libevent_pthreads openssl jansson yaml-0.1 hiredis \
            zlib libbrotlienc libzstd liburing
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wstrict-prototypes
CSTD     := -std=c11 -D_GNU_SOURCE
INCS     := -Iinclude -I$(LLHTTP_INC) $(PKG_CFLAGS)
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
DEFS     := -DPC_VERSION=\"$(VERSION)\"
# METRICS=0 compiles the metrics registry out (benchmarking its cost):
# every recording call is empty and /metrics shows only the gauges that need
# no registry. Switching it rebuilds every object (the stamp below).
METRICS  ?= 1
ifeq ($(METRICS),0)
DEFS     += -DPC_NO_METRICS
endif
METRICS_STAMP := build/.metrics-$(METRICS)

REL_FLAGS  := -O2 -g -fno-plt
SAN_FLAGS  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

SRCS     := $(sort $(wildcard src/*.c src/*/*.c))
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
LLHTTP_SRCS := $(LLHTTP_DIR)/api.c $(LLHTTP_DIR)/http.c $(LLHTTP_DIR)/llhttp.c
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))

REL_OBJS  := $(patsubst src/%.c,build/obj/%.o,$(SRCS))
SAN_OBJS  := $(patsubst src/%.c,build/san/obj/%.o,$(SRCS))
SAN_LIB_OBJS := $(patsubst src/%.c,build/san/obj/%.o,$(LIB_SRCS))
REL_LLHTTP := $(patsubst $(LLHTTP_DIR)/%.c,build/obj/llhttp/%.o,$(LLHTTP_SRCS))
SAN_LLHTTP := $(patsubst $(LLHTTP_DIR)/%.c,build/san/obj/llhttp/%.o,$(LLHTTP_SRCS))
UNIT_OBJS := $(patsubst tests/unit/%.c,build/san/unit/%.o,$(UNIT_SRCS))

.PHONY: all san deps run test unit e2e bench fuzz fuzz-build clean install format

all: build/portcullis

deps:
	@./scripts/install-deps.sh

build/portcullis: $(REL_OBJS) $(REL_LLHTTP)
	$(CC) $(REL_FLAGS) -o $@ $^ $(PKG_LIBS) -lpthread -lm

san: build/san/portcullis build/san/unit_tests

build/san/portcullis: $(SAN_OBJS) $(SAN_LLHTTP)
	$(CC) $(SAN_FLAGS) -o $@ $^ $(PKG_LIBS) -lpthread -lm

build/san/libportcullis.a: $(SAN_LIB_OBJS) $(SAN_LLHTTP)
	@rm -f $@
	ar rcs $@ $^

build/san/unit_tests: $(UNIT_OBJS) build/san/libportcullis.a
	$(CC) $(SAN_FLAGS) -o $@ $(UNIT_OBJS) build/san/libportcullis.a $(PKG_LIBS) -lcriterion -lpthread -lm

build/obj/%.o: src/%.c $(METRICS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(REL_FLAGS) $(INCS) $(DEFS) -MMD -MP -c -o $@ $<

build/san/obj/%.o: src/%.c $(METRICS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(SAN_FLAGS) $(INCS) $(DEFS) -MMD -MP -c -o $@ $<

build/san/unit/%.o: tests/unit/%.c $(METRICS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(SAN_FLAGS) $(INCS) $(DEFS) -MMD -MP -c -o $@ $<

$(METRICS_STAMP):
	@mkdir -p build
	@rm -f build/.metrics-*
	@touch $@

# llhttp is third-party generated code from Debian's node-llhttp: compiled
# from its installed sources, never copied, and not held to our warnings.
build/obj/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(REL_FLAGS) -I$(LLHTTP_INC) -w -c -o $@ $<

build/san/obj/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(SAN_FLAGS) -I$(LLHTTP_INC) -w -c -o $@ $<

run: deps build/portcullis
	@./scripts/run-demo.sh

unit: build/san/unit_tests
	ASAN_OPTIONS=detect_leaks=1 ./build/san/unit_tests --jobs 2

e2e: build/portcullis build/san/portcullis
	PORTCULLIS_BIN=$(CURDIR)/build/san/portcullis PORTCULLIS_REL_BIN=$(CURDIR)/build/portcullis \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e

test: deps
	$(MAKE) all san
	$(MAKE) unit
	$(MAKE) e2e

bench: deps build/portcullis
	./bench/run.sh

# Fuzzing: libFuzzer targets built with Debian's clang under ASan/UBSan,
# each run for FUZZ_TIME seconds from its committed seed corpus (new inputs
# go to build/fuzz/corpus-<target>, the committed seeds stay as they are).
FUZZ_CC    ?= clang
FUZZ_TIME  ?= 30
FUZZ_FLAGS := -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
FUZZ_SRCS  := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS  := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRCS))
FUZZ_OBJS  := $(patsubst src/%.c,build/fuzz/obj/%.o,$(LIB_SRCS))
FUZZ_LLHTTP := $(patsubst $(LLHTTP_DIR)/%.c,build/fuzz/obj/llhttp/%.o,$(LLHTTP_SRCS))

build/fuzz/obj/%.o: src/%.c $(METRICS_STAMP)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CSTD) $(WARN) $(FUZZ_FLAGS) $(INCS) $(DEFS) -MMD -MP -c -o $@ $<

build/fuzz/obj/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -I$(LLHTTP_INC) -w -c -o $@ $<

build/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJS) $(FUZZ_LLHTTP)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CSTD) $(WARN) -g -O1 -fsanitize=fuzzer,address,undefined $(INCS) \
	  -MMD -MP -o $@ $< $(FUZZ_OBJS) $(FUZZ_LLHTTP) $(PKG_LIBS) -lpthread -lm

# Kept between runs (make would delete them as intermediate files).
.SECONDARY: $(FUZZ_OBJS) $(FUZZ_LLHTTP)

fuzz-build: $(FUZZ_BINS)

fuzz: deps fuzz-build
	@set -e; for b in $(FUZZ_BINS); do \
	  t=$${b#build/fuzz/fuzz_}; mkdir -p build/fuzz/corpus-$$t; \
	  echo "== fuzz $$t for $(FUZZ_TIME)s"; \
	  if ! ASAN_OPTIONS=detect_leaks=1 $$b -max_total_time=$(FUZZ_TIME) -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=build/fuzz/crash-$$t- \
	    build/fuzz/corpus-$$t tests/fuzz/corpus/$$t > build/fuzz/$$t.log 2>&1; then \
	    tail -40 build/fuzz/$$t.log; echo "fuzz $$t FAILED (log: build/fuzz/$$t.log)"; exit 1; \
	  fi; \
	  grep -E "^(Done|stat::number_of_executed_units)" build/fuzz/$$t.log; \
	done

# `make install [DESTDIR=...] [PREFIX=/usr/local] [SYSCONFDIR=/etc]`: the
# binary, the systemd unit (its paths rewritten for PREFIX and SYSCONFDIR),
# the sysusers.d file creating the `portcullis` user, the logrotate
# snippet, the man pages, the docs and examples, and the example
# configuration, which never replaces an existing one (docs/operations.md,
# "Installing on a systemd host").
SYSCONFDIR  ?= /etc
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
DOCDIR      ?= $(PREFIX)/share/doc/portcullis
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
DOCS        := README.md LICENSE $(wildcard docs/*.md)

install: build/portcullis
	install -D -m 0755 build/portcullis $(DESTDIR)$(BINDIR)/portcullis
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	  $(DESTDIR)$(SYSCONFDIR)/logrotate.d $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR)/examples
	sed -e 's|/usr/local/bin/portcullis|$(BINDIR)/portcullis|g' \
	  -e 's|/etc/portcullis/|$(SYSCONFDIR)/portcullis/|g' packaging/portcullis.service \
	  > $(DESTDIR)$(UNITDIR)/portcullis.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/portcullis.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/portcullis.service.tmp $(DESTDIR)$(UNITDIR)/portcullis.service
	install -m 0644 packaging/portcullis.sysusers $(DESTDIR)$(SYSUSERSDIR)/portcullis.conf
	install -m 0644 packaging/portcullis.logrotate $(DESTDIR)$(SYSCONFDIR)/logrotate.d/portcullis
	install -m 0644 man/portcullis.8 $(DESTDIR)$(MANDIR)/man8/portcullis.8
	install -m 0644 man/portcullis.yaml.5 $(DESTDIR)$(MANDIR)/man5/portcullis.yaml.5
	install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	install -m 0644 conf/portcullis.yaml conf/examples/*.yaml $(DESTDIR)$(DOCDIR)/examples/
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/portcullis
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/portcullis/portcullis.yaml ]; then \
	  echo "install: keeping the existing $(DESTDIR)$(SYSCONFDIR)/portcullis/portcullis.yaml"; \
	else \
	  echo "install -m 0644 conf/portcullis.yaml $(DESTDIR)$(SYSCONFDIR)/portcullis/portcullis.yaml"; \
	  install -m 0644 conf/portcullis.yaml $(DESTDIR)$(SYSCONFDIR)/portcullis/portcullis.yaml; \
	fi

format:
	clang-format -i $(SRCS) $(wildcard include/portcullis/*.h) $(UNIT_SRCS)

clean:
	rm -rf build

-include $(REL_OBJS:.o=.d) $(SAN_OBJS:.o=.d) $(UNIT_OBJS:.o=.d) $(FUZZ_OBJS:.o=.d) \
  $(FUZZ_BINS:=.d)
