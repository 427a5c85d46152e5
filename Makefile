# tessera: plain Makefile.  Targets: all test bench asan clean install.
# Everything is compiled with mpicc (only src/sched.c includes mpi.h, but the
# binary links Open MPI); tests link the same library.

CC       = mpicc
PREFIX  ?= /usr/local
ARCH    ?= -march=native
OPT     ?= -O3
CFLAGS  ?= $(OPT) -g $(ARCH)
WARN     = -std=c11 -Wall -Wextra -Wstrict-prototypes -Wno-unused-parameter
CPPFLAGS = -Iinclude -D_GNU_SOURCE -MMD -MP
LDLIBS   = -lopenblas -ltiff -lpng -ljpeg -lexif -lstb -linih -lcjson -lz -lm -lpthread

BUILD   ?= build
# the program; a sanitizer build keeps its own (build-asan/tessera)
BIN     ?= tessera
SRC      = $(wildcard src/*.c)
LIBSRC   = $(filter-out src/main.c,$(SRC))
LIBOBJ   = $(LIBSRC:src/%.c=$(BUILD)/obj/%.o)
TESTSRC  = $(wildcard tests/test_*.c)
TESTBIN  = $(TESTSRC:tests/%.c=$(BUILD)/tests/%)

all: $(BIN)

$(BIN): $(BUILD)/obj/main.o $(BUILD)/libtessera.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

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

tests: $(BIN) $(BUILD)/mkdemo $(TESTBIN)

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

install: tessera
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 tessera $(DESTDIR)$(PREFIX)/bin/tessera

clean:
	rm -rf build build-asan tessera tessera-bench

.PHONY: all test tests bench asan install clean
.SECONDARY:

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/tests/*.d)
