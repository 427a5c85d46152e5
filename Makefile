# tessera: plain Makefile.  Targets: all test bench asan clean install.
# Everything is compiled with mpicc (only src/sched.c includes mpi.h, but the
# binary links Open MPI); tests link the same library.

CC       = mpicc
PREFIX  ?= /usr/local
ARCH    ?= -march=native
OPT     ?= -O3
CFLAGS  ?= $(OPT) -g $(ARCH)
WARN     = -std=c11 -Wall -Wextra -Wstrict-prototypes -Wno-unused-parameter
# the Deep Zoom viewer's files (tools/deps.sh installs them; $TESSERA_OPENSEADRAGON wins)
OPENSEADRAGON ?= $(CURDIR)/build-npm/node_modules/openseadragon/build/openseadragon
CPPFLAGS = -Iinclude -D_GNU_SOURCE -MMD -MP -DTS_OPENSEADRAGON_DIR='"$(OPENSEADRAGON)"' \
           $(shell pkg-config --cflags cairo)
LDLIBS   = -lopenblas -ltiff -lpng -ljpeg -lexif -lstb -linih -lcjson -lz -lm -lpthread \
           $(shell pkg-config --libs libzip) -llcms2 $(shell pkg-config --libs cairo)

BUILD   ?= build
# the program; a sanitizer build keeps its own (build-asan/tessera)
BIN     ?= tessera
# the contact sheet tool, beside the program (tools/sheet.c)
SHEET_BIN = $(dir $(BIN))tessera-sheet
SRC      = $(wildcard src/*.c)
LIBSRC   = $(filter-out src/main.c,$(SRC))
LIBOBJ   = $(LIBSRC:src/%.c=$(BUILD)/obj/%.o)
TESTSRC  = $(wildcard tests/test_*.c)
TESTBIN  = $(TESTSRC:tests/%.c=$(BUILD)/tests/%)

all: $(BIN) $(SHEET_BIN)

$(BIN): $(BUILD)/obj/main.o $(BUILD)/libtessera.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(SHEET_BIN): tools/sheet.c $(BUILD)/libtessera.a
	@mkdir -p $(BUILD)/obj
	$(CC) $(CPPFLAGS) -MF $(BUILD)/obj/tessera-sheet.d $(WARN) $(CFLAGS) -o $@ $< \
	  $(BUILD)/libtessera.a $(LDLIBS)

$(BUILD)/libtessera.a: $(LIBOBJ)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c $(BUILD)/libtessera.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -o $@ $< $(BUILD)/libtessera.a -lcmocka $(LDLIBS)

$(BUILD)/tessera-bench: bench/bench.c $(BUILD)/libtessera.a
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -o $@ $< $(BUILD)/libtessera.a $(LDLIBS)

$(BUILD)/mkdemo: tools/mkdemo.c $(BUILD)/libtessera.a
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -o $@ $< $(BUILD)/libtessera.a $(LDLIBS)

$(BUILD)/dzi_demo: tests/dzi_demo.c $(BUILD)/libtessera.a
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -o $@ $< $(BUILD)/libtessera.a $(LDLIBS)

$(BUILD)/style-balance: bench/balance.c $(BUILD)/libtessera.a
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -o $@ $< $(BUILD)/libtessera.a $(LDLIBS)

$(BUILD)/lbfgs-bench: bench/lbfgs.c $(BUILD)/libtessera.a
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -o $@ $< $(BUILD)/libtessera.a $(LDLIBS)

$(BUILD)/loss-bench: bench/loss.c $(BUILD)/libtessera.a
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -o $@ $< $(BUILD)/libtessera.a $(LDLIBS)

$(BUILD)/seams: bench/seams.c $(BUILD)/libtessera.a
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -o $@ $< $(BUILD)/libtessera.a $(LDLIBS)

tessera-bench: $(BUILD)/tessera-bench
	cp $< $@

tests: $(BIN) $(SHEET_BIN) $(BUILD)/mkdemo $(BUILD)/dzi_demo $(TESTBIN)

test: tests
	bash tests/run.sh $(BUILD)

bench: tessera-bench tessera $(BUILD)/style-balance $(BUILD)/seams $(BUILD)/lbfgs-bench $(BUILD)/loss-bench

asan:
	$(MAKE) BUILD=build-asan BIN=build-asan/tessera OPT=-O1 ARCH= \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined" tests
	ASAN_OPTIONS=fast_unwind_on_malloc=0 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  bash tests/run.sh build-asan build-asan/tessera

install: tessera tessera-sheet
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 tessera $(DESTDIR)$(PREFIX)/bin/tessera
	install -m 755 tessera-sheet $(DESTDIR)$(PREFIX)/bin/tessera-sheet

clean:
	rm -rf build build-asan tessera tessera-sheet tessera-bench

.PHONY: all test tests bench asan install clean
.SECONDARY:

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/tests/*.d)

# --- fuzz: libFuzzer harnesses (tests/fuzz/fuzz_*.c) over a clang build of the library
# with ASan and UBSan, in build-fuzz/ (its own .gitignore): build-fuzz/fuzz/<name> and
# the corpus generator build-fuzz/fuzz/mkcorpus.  tests/t_fuzz.sh runs them.  sched.c
# is compiled too, against Open MPI's headers; no harness links it.  clang before 15
# has no _Float16 on x86 (half.c): there the fuzz build reads it as the storage type
# __fp16 (same conversions, made by F16C instructions under -march=native).
FUZZ_CC     ?= clang
FUZZ_SAN     = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  = -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZSRC      = $(wildcard tests/fuzz/fuzz_*.c)
FUZZBIN      = $(FUZZSRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)

fuzz:
	@mkdir -p build-fuzz
	@echo '*' >build-fuzz/.gitignore
	$(MAKE) BUILD=build-fuzz CC=$(FUZZ_CC) OPT=-O1 \
	  CFLAGS="$(FUZZ_CFLAGS) $(ARCH) $$(mpicc --showme:compile 2>/dev/null) \
	  $$(echo '_Float16 x;' | $(FUZZ_CC) $(ARCH) -x c -fsyntax-only - 2>/dev/null || \
	     echo -D_Float16=__fp16)" fuzz-bins

fuzz-bins: $(FUZZBIN) $(BUILD)/fuzz/mkcorpus

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(BUILD)/libtessera.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/libtessera.a $(LDLIBS)

$(BUILD)/fuzz/mkcorpus: tests/fuzz/mkcorpus.c $(BUILD)/libtessera.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -o $@ $< $(BUILD)/libtessera.a $(LDLIBS)

.PHONY: fuzz fuzz-bins

-include $(wildcard $(BUILD)/fuzz/*.d)
