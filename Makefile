# thumbr — see README.md.  `make` builds ./thumbr, `make check` builds and runs every test,
# `make demo` sets up and thumbnails testdata/ into out/, `make bench` measures.
# make SANITIZER=address|undefined|thread [check]  builds into build/SANITIZER/.

PKG_CONFIG ?= pkg-config
CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=
PKGS = vips libpng libjpeg
DEBIAN_PKGS = build-essential pkg-config libvips-dev libjpeg62-turbo-dev libturbojpeg0-dev \
	libpng-dev check

SANITIZER ?=
ifeq ($(SANITIZER),)
  BUILD = build/default
  SANFLAGS =
else ifneq ($(filter $(SANITIZER),address undefined thread),)
  BUILD = build/$(SANITIZER)
  SANFLAGS = -fsanitize=$(SANITIZER) -fno-sanitize-recover=all -fno-omit-frame-pointer
else
  $(error SANITIZER must be address, undefined or thread, not '$(SANITIZER)')
endif

CFLAGS ?= -O2 -g
WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) $(SANFLAGS) -Iinclude \
	$(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null) -DTHUMBR_VIPS_SONAME='"$(VIPS_SONAME)"' -MMD -MP
# libvips is opened with dlopen when a worker first needs it (see src/img.c): the binary links
# only libjpeg, libpng and zlib (pngrows.c inflates PNG image data itself); the tests, which
# call libvips themselves, link it too
LINK_PKGS = libpng libjpeg zlib
LIBS = $(shell $(PKG_CONFIG) --libs $(LINK_PKGS) 2>/dev/null) -ldl -lpthread -lm
VIPS_LIBS = $(shell $(PKG_CONFIG) --libs vips 2>/dev/null)
VIPS_SONAME := $(or $(shell readelf -d "$$($(PKG_CONFIG) --variable=libdir vips 2>/dev/null)/libvips.so" \
	2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p'),libvips.so.42)
CHECK_CFLAGS = $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS = $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

MODULES = util opts scan plan state lock prune shm ring pool io worker resample chroma jpegprog pngrows icc img out report batch
OBJS = $(MODULES:%=$(BUILD)/src/%.o)
TESTS = check_ring check_opts check_plan check_scan check_out check_resample check_chroma check_jpegprog check_pngrows check_icc check_img check_state check_e2e
TEST_OBJS = $(TESTS:%=$(BUILD)/tests/%.o) $(BUILD)/tests/check_main.o $(BUILD)/tests/testutil.o

.PHONY: all check demo bench install clean deps fuzz memcheck
all: thumbr

thumbr: $(BUILD)/thumbr
	cp $< $@

$(BUILD)/thumbr: $(OBJS) $(BUILD)/src/main.o
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/src/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# the inner loops of the resampler, the chroma halving, jpegprog's inverse DCT and img's
# box shrink are plain C written to be vectorised (see HOT in include/thumbr/util.h)
$(BUILD)/src/resample.o $(BUILD)/src/chroma.o $(BUILD)/src/jpegprog.o $(BUILD)/src/img.o: ALL_CFLAGS += -ftree-vectorize -fno-math-errno

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -c -o $@ $<

$(BUILD)/check_thumbr: $(OBJS) $(TEST_OBJS)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(CHECK_LIBS) $(LIBS) $(VIPS_LIBS)

# Every test: unit suites and end-to-end runs of the real binary over testdata/.
# Check forks each test: a sanitizer report must end that test, not just its exit code;
# TSan would otherwise sleep a second in every exit, which the SIGTERM test measures.
check: deps-ok $(BUILD)/thumbr $(BUILD)/check_thumbr
	THUMBR_BIN=$(CURDIR)/$(BUILD)/thumbr THUMBR_TESTDATA=$(CURDIR)/testdata \
	TSAN_OPTIONS="halt_on_error=1 atexit_sleep_ms=0 suppressions=$(CURDIR)/tests/tsan.supp $(TSAN_OPTIONS)" \
		$(BUILD)/check_thumbr

# Set up (install build dependencies when root), build, thumbnail testdata/ into out/.
demo:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory thumbr
	@rm -rf out
	@echo "./thumbr testdata out"
	@./thumbr testdata out; rc=$$?; \
	echo "exit status $$rc; thumbnails in out/$$(ls out)/"; \
	if [ $$rc -eq 1 ]; then echo "(1 is expected: testdata/ holds deliberately broken images, see testdata/README.md)"; fi; \
	[ $$rc -le 1 ]

bench: thumbr
	bench/run

# valgrind memcheck on an end-to-end run, workers included (exit 99 on any error).  libvips'
# run-time generated vector code is turned off (VIPS_NOVECTOR): valgrind cannot follow it.
memcheck: thumbr
	rm -rf build/memcheck && mkdir -p build/memcheck/logs
	VIPS_NOVECTOR=1 valgrind -q --trace-children=yes --errors-for-leak-kinds=none \
		--log-file=build/memcheck/logs/vg.%p.log ./thumbr -j2 --io-threads 2 -s 64 \
		-s 48x48-attention testdata/made build/memcheck/out; [ $$? -le 1 ]
	@if grep -l . build/memcheck/logs/*.log; then \
		cat build/memcheck/logs/*.log; echo "memcheck: errors above"; exit 1; \
	else echo "memcheck: no errors in $$(ls build/memcheck/logs | wc -l) processes"; fi

# libFuzzer on what thumbr parses (options, sizes, records, EXIF, ring framing), for
# FUZZ_SECONDS; needs clang and libclang-rt-14-dev.
CLANG ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SRC = tests/fuzz_parse.c src/opts.c src/state.c src/ring.c src/util.c src/plan.c \
	src/img.c src/scan.c src/resample.c src/chroma.c src/jpegprog.c src/pngrows.c src/icc.c
build/fuzz/fuzz_parse: $(FUZZ_SRC) $(wildcard include/thumbr/*.h)
	@mkdir -p $(@D)
	$(CLANG) -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
		$(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null) -o $@ $(FUZZ_SRC) $(LIBS)
fuzz: build/fuzz/fuzz_parse
	@mkdir -p build/fuzz/corpus
	build/fuzz/fuzz_parse -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=1024 \
		build/fuzz/corpus tests/fuzz-seeds

deps:
	@if $(PKG_CONFIG) --exists $(PKGS) check 2>/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing build dependencies: $(DEBIAN_PKGS)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(DEBIAN_PKGS); \
	else \
		echo "missing build dependencies; as root run:"; \
		echo "  apt-get install $(DEBIAN_PKGS)"; exit 1; \
	fi

deps-ok:
	@$(PKG_CONFIG) --exists $(PKGS) check 2>/dev/null || { \
		echo "missing build dependencies; run 'make deps' as root, or:"; \
		echo "  apt-get install $(DEBIAN_PKGS)"; exit 1; }

install: thumbr
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 thumbr $(DESTDIR)$(PREFIX)/bin/thumbr
	install -m 644 man/thumbr.1 $(DESTDIR)$(PREFIX)/share/man/man1/thumbr.1

clean:
	rm -rf build thumbr out

.PHONY: deps-ok
-include $(OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(BUILD)/src/main.d
