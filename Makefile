# Chachaping: `make demo` and `make test` install everything they need, then run.
# Both are idempotent: the second time they only run.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS := device,server,telegram,dev
# The tests also build llama.cpp's OpenAI-compatible server (several minutes, once: pip keeps the wheel).
# It also trains a Piper voice for a few steps on the CPU (voice-train: PyTorch's CPU build).
TEST_EXTRAS := $(EXTRAS),llm-test,voice-train
STAMP  := .make

.PHONY: demo test install system-deps lint bench clean

demo: install
	$(BIN)/chacha talk --input samples/ko-read-sentence.wav --output build/demo-reply.wav --conversation demo

test: $(STAMP)/test-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(STAMP)/venv

system-deps: $(STAMP)/system

$(STAMP)/system: scripts/install-system-deps.sh
	@mkdir -p $(STAMP)
	sh scripts/install-system-deps.sh "$(PYTHON)"
	@touch $@

$(STAMP)/venv: pyproject.toml $(STAMP)/system
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e ".[$(EXTRAS)]"
	@mkdir -p build
	@touch $@

$(STAMP)/test-deps: $(STAMP)/venv scripts/install-test-deps.sh
	sh scripts/install-test-deps.sh
	$(BIN)/python -m pip install --disable-pip-version-check -q "torch==2.13.0"
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip install --disable-pip-version-check -q -e ".[$(TEST_EXTRAS)]"
	@touch $@

bench: $(STAMP)/test-deps
	$(BIN)/python -m pip install --disable-pip-version-check -q -e ".[$(TEST_EXTRAS),bench]"
	$(BIN)/chacha bench stt samples --repeat 5 --output bench/results/stt-2cores.json
	$(BIN)/chacha bench stt samples --repeat 5 --cores 1 --output bench/results/stt-1core.json
	$(BIN)/chacha bench all

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(STAMP) build
