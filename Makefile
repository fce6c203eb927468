# ondemand: top-level build. `make demo` and `make test` are the only commands
# needed on a fresh Debian 12 machine (as root): both install packages and build first.

SHELL := /bin/bash
TOP := $(CURDIR)
BUILD := $(TOP)/build
BIN := $(BUILD)/bin
NGX_BUILD := $(BUILD)/nginx
MODULE := $(BUILD)/modules/ngx_http_ondemand_module.so
JOBS ?= $(shell nproc)

PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all deps build helperd module test unit-test integration-test e2e-test demo bench \
        format lint clean install uninstall

all: build

deps:
	@scripts/deps.sh

build: helperd module

helperd:
	cmake -S $(TOP) -B $(BUILD)/cmake -DONDEMAND_BIN_DIR=$(BIN) >/dev/null
	cmake --build $(BUILD)/cmake -j$(JOBS)

# The module is built against Debian's nginx-dev sources so that it loads into
# Debian's /usr/sbin/nginx (configure with the same flags, build only the module).
module: $(MODULE)

MODULE_SOURCES := config scripts/ngx-cc $(wildcard ngx_module/*.cpp ngx_module/*.h proto/*.cpp proto/*.h)

$(NGX_BUILD)/Makefile: config scripts/ngx-cc
	rm -rf $(NGX_BUILD)
	mkdir -p $(BUILD)
	cp -a /usr/share/nginx/src $(NGX_BUILD)
	cd $(NGX_BUILD) && . ./conf_flags && \
	  ./configure "$${NGX_CONF_FLAGS[@]}" --add-dynamic-module=$(TOP) >configure.log 2>&1 || \
	  { tail -20 configure.log; exit 1; }
	touch $@

$(MODULE): $(NGX_BUILD)/Makefile $(MODULE_SOURCES)
	$(MAKE) -C $(NGX_BUILD) -f objs/Makefile modules
	mkdir -p $(dir $@)
	cp $(NGX_BUILD)/objs/ngx_http_ondemand_module.so $@

unit-test: helperd
	$(BIN)/ondemand-unit-tests

test: deps build
	scripts/run-tests

# libFuzzer on the protocol codec (tests/fuzz/, docs/PROTOCOL.md) for FUZZ_SECONDS. It runs on
# a copy of the seed corpus in build/fuzz-corpus (kept between runs), and writes the input of a
# crash to build/fuzz-artifacts/, so the repository stays clean. Inputs up to 8192 bytes reach
# past the 4096-byte line limit.
FUZZ_SECONDS ?= 30
FUZZ_BIN := $(BIN)/ondemand-fuzz-protocol

.PHONY: fuzz

$(FUZZ_BIN): tests/fuzz/fuzz_protocol.cpp proto/ondemand_protocol.cpp proto/ondemand_protocol.h
	mkdir -p $(dir $@)
	clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -I $(TOP)/proto -o $@ tests/fuzz/fuzz_protocol.cpp proto/ondemand_protocol.cpp

fuzz: $(FUZZ_BIN)
	mkdir -p $(BUILD)/fuzz-corpus $(BUILD)/fuzz-artifacts
	cp tests/fuzz/corpus/* $(BUILD)/fuzz-corpus/
	$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=1 \
	  -artifact_prefix=$(BUILD)/fuzz-artifacts/ $(BUILD)/fuzz-corpus

demo: deps build
	scripts/demo

# PREFIX and DESTDIR aware; copies files only (docs/install.md says what to run next).
install: build
	PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) scripts/install.sh install

uninstall:
	PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) scripts/install.sh uninstall

bench: deps build
	bench/run

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h' | grep -v '^ngx_module/ngx_http_')

# clang-format everywhere but the nginx-style module; clang-tidy (.clang-tidy) on the daemon,
# the codec, ondemandctl and the module's state machine. (clang-tidy 14 cannot parse the test
# app's Boost.Asio coroutines with GCC 12's library, so tests/app is formatted but not tidied.)
TIDY_SOURCES = $$(git ls-files 'helperd/*.cpp' 'proto/*.cpp' 'ctl/*.cpp' 'ngx_module/ondemand_*.cpp')

lint: helperd
	clang-format --dry-run --Werror $$(git ls-files '*.cpp' '*.h' | grep -v '^ngx_module/ngx_http_')
	@# one file per run: clang-tidy 14 misparses fmt's headers after several files in one run
	echo $(TIDY_SOURCES) | xargs -n1 -P$(JOBS) clang-tidy -p $(BUILD)/cmake --quiet

clean:
	rm -rf $(BUILD)
