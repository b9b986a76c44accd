# The two commands of the README: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-requirements
# The C NBT walker of world validation (backups/engine/native/nbtwalk.c), loaded with
# ctypes. Without a C compiler the build is skipped with a warning and the engine walks
# NBT in Python (slower; it logs so once).
CC ?= cc
NBTWALK := backups/engine/native/libnbtwalk.so

.PHONY: run test bench venv

venv: $(STAMP) $(NBTWALK)

$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $(STAMP)

$(NBTWALK): backups/engine/native/nbtwalk.c
	$(CC) -O2 -Wall -shared -fPIC -o $@.tmp $< && mv $@.tmp $@ \
		|| echo "warning: could not build $@; world validation walks NBT in Python (slower)" >&2

run: venv
	$(BIN)/python -m mcsite.run

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: venv
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.api_latency
	$(BIN)/python -m bench.offsite_upload --report
	$(BIN)/python -m bench.nodes_beat
	$(BIN)/python -m bench.incremental
