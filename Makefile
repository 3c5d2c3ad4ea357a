# Chachaping: `make demo` and `make test` install everything they need, then run.
# Both are idempotent: the second time they only run.
#
# Every install comes from the lock, uv.lock (README: "Locked installs"): uv installs exactly
# the versions the tests passed with, and `make lock` is the one, deliberate way to change them.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
# The interpreter itself, not a launcher such as pyenv's shim: uv would take a different path
# for a different Python and make the venv anew at every sync.
PYTHON_EXE := $(shell "$(PYTHON)" -c 'import sys; print(sys.executable)' 2>/dev/null || echo "$(PYTHON)")
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := .make
TOOLS  := $(STAMP)/tools
UV     := $(TOOLS)/bin/uv
# The doll, the server and the Telegram bot: what `make demo` needs.
DEMO_EXTRAS := --extra device --extra server --extra telegram
# The tests need every extra: pytest and ruff (dev), llama.cpp's OpenAI-compatible server, which
# uv compiles once (several minutes) and keeps in its cache (llm-test), Piper's trainer on
# PyTorch's CPU build (voice-train) and matplotlib for the benchmark plot (bench).
TEST_EXTRAS := --all-extras

# uv uses this Python and never downloads one; the venv is .venv.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
UV_SYNC := $(UV) sync --locked --python "$(PYTHON_EXE)"

.PHONY: demo test install system-deps lint bench lock check-lock clean

demo: install
	$(BIN)/chacha talk --input samples/ko-read-sentence.wav --output build/demo-reply.wav --conversation demo

test: $(STAMP)/test-deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(STAMP)/venv

system-deps: $(STAMP)/system

$(STAMP)/system: scripts/install-system-deps.sh scripts/apt-install.sh
	@mkdir -p $(STAMP)
	sh scripts/install-system-deps.sh "$(PYTHON)"
	@touch $@

# uv itself, pinned with its hashes, in a small venv of its own.
$(UV): scripts/uv-requirements.txt $(STAMP)/system
	@test -x $(TOOLS)/bin/python || "$(PYTHON)" -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --disable-pip-version-check -q --require-hashes --no-deps \
		-r scripts/uv-requirements.txt
	@touch $@

# --inexact: a venv that `make test` filled keeps its test packages.
$(STAMP)/venv: pyproject.toml uv.lock $(UV)
	$(UV_SYNC) --inexact $(DEMO_EXTRAS)
	@mkdir -p build
	@touch $@

# Exact: the venv holds the lock's test set and nothing else (tests/test_lock.py checks it).
$(STAMP)/test-deps: $(STAMP)/venv scripts/install-test-deps.sh
	sh scripts/install-test-deps.sh
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(UV_SYNC) $(TEST_EXTRAS)
	@touch $@

bench: $(STAMP)/test-deps
	$(BIN)/chacha bench stt samples --repeat 5 --output bench/results/stt-2cores.json
	$(BIN)/chacha bench stt samples --repeat 5 --cores 1 --output bench/results/stt-1core.json
	$(BIN)/chacha bench all
	$(BIN)/chacha bench memory --cores 1 --output bench/results/memory.json
	$(BIN)/chacha bench limits --output bench/results/limits.json

lint: $(STAMP)/test-deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

# The one way to change what is installed: resolve again, newest allowed versions of everything.
# Then run `make test` and commit uv.lock with what changed and why.
lock: $(UV)
	$(UV) lock --upgrade --python "$(PYTHON_EXE)"

# Whether uv.lock still agrees with pyproject.toml (no network needed for an agreeing lock).
check-lock: $(UV)
	$(UV) lock --check --python "$(PYTHON_EXE)"

clean:
	rm -rf $(VENV) $(STAMP) build
