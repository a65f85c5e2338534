# licd: build, local stack and tests. `make run` / `make stop` / `make test`.
# Every binary is one fcgi/*.c over the shared library fcgi/lib/*.c.

CC       ?= cc
PKGS     := libpq json-c libcurl openssl
CPPFLAGS += -iquote fcgi/lib -D_GNU_SOURCE $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -Wall -Wextra -Werror -pthread
LDLIBS   := -Wl,--as-needed -lfcgi $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lpq -ljson-c -lcurl -lssl -lcrypto) -pthread
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

BUILD    := build
LIB_SRC  := $(wildcard fcgi/lib/*.c)
LIB_HDR  := $(wildcard fcgi/lib/*.h)
BIN_SRC  := $(wildcard fcgi/*.c)
BINS     := $(patsubst fcgi/%.c,$(BUILD)/bin/%,$(BIN_SRC))
SAN_BINS := $(patsubst fcgi/%.c,$(BUILD)/asan/bin/%,$(BIN_SRC))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT     := $(patsubst tests/unit/%.c,$(BUILD)/asan/unit/%,$(UNIT_SRC))

RUN_DIR  ?= $(CURDIR)/run
PORT     ?= 8080

.PHONY: all asan unit run stop status test clean deps bench install

all: $(BINS)

$(BUILD)/obj/%.o: fcgi/%.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/liblicd.a: $(patsubst fcgi/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
	$(AR) rcs $@ $^

$(BUILD)/bin/%: $(BUILD)/obj/%.o $(BUILD)/liblicd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Sanitizer builds: the C unit tests always, the programs for `make test`.
$(BUILD)/asan/obj/%.o: fcgi/%.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN) -c -o $@ $<

$(BUILD)/asan/liblicd.a: $(patsubst fcgi/%.c,$(BUILD)/asan/obj/%.o,$(LIB_SRC))
	$(AR) rcs $@ $^

$(BUILD)/asan/bin/%: $(BUILD)/asan/obj/%.o $(BUILD)/asan/liblicd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/asan/unit/%: tests/unit/%.c tests/unit/unit.h $(BUILD)/asan/liblicd.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN) -o $@ $< $(BUILD)/asan/liblicd.a $(LDLIBS) -ljwt

asan: $(SAN_BINS)

unit: $(UNIT)
	@set -e; for t in $(UNIT); do echo "== $$t"; $$t; done

deps:
	@deploy/deps.sh

run: deps all
	@deploy/local.sh start $(RUN_DIR) $(PORT)
	@deploy/demo.sh $(RUN_DIR) $(PORT)

stop:
	@deploy/local.sh stop $(RUN_DIR)

status:
	@deploy/local.sh status $(RUN_DIR)

test: deps
	@tests/run.sh

clean:
	rm -rf $(BUILD)
