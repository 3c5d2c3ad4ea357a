# Chachaping: `make demo` and `make test` install everything they need, then run.
# Both are idempotent: the second time each install step only checks (a second or two), then runs.
#
# Every install comes from the lock, uv.lock (README: "Locked installs"): uv installs exactly
# the versions the tests passed with, and `make lock` is the one, deliberate way to change them.

# The Python: python3 where the lock covers it (Debian 12's 3.11, Debian 13's 3.13), else the
# newest python3.X on PATH that it covers; `make demo PYTHON=/usr/bin/python3.13` picks one.
PYTHON ?= $(shell sh scripts/check-python.sh pick)
# The interpreter itself, not a launcher such as pyenv's shim: uv would take a different path
# for a different Python and make the venv anew at every sync. Empty when the lock does not
# cover it; every install target then stops with check-python.sh's one line.
PYTHON_EXE := $(shell sh scripts/check-python.sh check "$(PYTHON)" 2>/dev/null)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := .make
TOOLS  := $(STAMP)/tools
UV     := $(TOOLS)/bin/uv
# The doll, the server and the Telegram bot: what `make demo` needs.
DEMO_EXTRAS := --extra device --extra server --extra telegram
# The tests need every extra but one: pytest and ruff (dev), llama.cpp's OpenAI-compatible
# server, which uv compiles once (several minutes) and keeps in its cache (llm-test), and
# matplotlib for the benchmark plot (bench). Piper's trainer on PyTorch (voice-train) has a
# target of its own, `make test-voice`: PyTorch's CPU build for x86-64 is a wheel that PyPI
# does not have (its x86-64 torch is a CUDA build of several GB).
TEST_EXTRAS := --all-extras --no-extra voice-train
# Where PyTorch's CPU build lies on the development and CI machines (uv.lock names the file).
TORCH_WHEELS ?= /opt/wheels

# uv uses this Python and never downloads one; the venv is .venv.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
UV_SYNC := $(UV) sync --locked --python "$(PYTHON_EXE)"

.PHONY: demo test test-voice install test-deps python system-deps lint bench lock check-lock \
	pi-check clean

demo: install
	$(BIN)/chacha talk --input samples/ko-read-sentence.wav --output build/demo-reply.wav --conversation demo

test: test-deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The voice-training tests, with Piper's trainer and PyTorch installed from the lock.
test-voice: test-deps
	sh scripts/check-voice-train.sh "$(PYTHON_EXE)"
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(UV_SYNC) --all-extras
	$(BIN)/python -m pytest -m voice_train $(PYTEST_ARGS)

# The venv follows the Python: when PYTHON names another one, uv makes .venv anew for it.
# --inexact: a venv that `make test` filled keeps its test packages.
install: $(UV)
	$(UV_SYNC) --inexact $(DEMO_EXTRAS)
	@mkdir -p build

# Exact: the venv holds the lock's test set and nothing else (tests/test_lock.py checks it).
test-deps: $(UV)
	sh scripts/install-test-deps.sh
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(UV_SYNC) $(TEST_EXTRAS)

# Stops with one line when the lock does not cover $(PYTHON), before anything is installed.
python:
	@sh scripts/check-python.sh check "$(PYTHON)" >/dev/null

system-deps: python
	sh scripts/install-system-deps.sh "$(PYTHON_EXE)"

# uv itself, pinned with its hashes, in a small venv of its own (made again when its Python
# is gone or it holds another uv).
$(UV): system-deps scripts/uv-requirements.txt
	@if ! $(TOOLS)/bin/python -c '' 2>/dev/null; then rm -rf $(TOOLS) && "$(PYTHON_EXE)" -m venv $(TOOLS); fi
	@$(UV) --version 2>/dev/null | grep -qF "$$(sed -n 's/^uv==\([^ ]*\).*/\1/p' scripts/uv-requirements.txt)" || \
		$(TOOLS)/bin/python -m pip install --disable-pip-version-check -q --require-hashes --no-deps \
			-r scripts/uv-requirements.txt

# WAKE_CORPUS=manifest.json: the wake phrase on a real-speech corpus (docs/benchmarks.md, "Wake
# phrase"); without it, on the repository's samples only. TURN_CORPUS=manifest.json: the end of
# turn's cues fitted and compared on real speech (docs/benchmarks.md, "End of turn on real speech").
bench: test-deps
	$(BIN)/chacha bench stt samples --repeat 5 --output bench/results/stt-2cores.json
	$(BIN)/chacha bench stt samples --repeat 5 --cores 1 --output bench/results/stt-1core.json
	$(BIN)/chacha bench all
	$(BIN)/chacha bench memory --cores 1 --output bench/results/memory.json
	$(BIN)/chacha bench limits --output bench/results/limits.json
	$(BIN)/chacha bench echo --cores 1 --output bench/results/echo.json
	$(BIN)/chacha bench wake --cores 1 $(if $(WAKE_CORPUS),--corpus $(WAKE_CORPUS) --output bench/results/wake.json,--output bench/results/wake-samples.json)
	$(if $(TURN_CORPUS),$(BIN)/chacha bench endpoint --corpus $(TURN_CORPUS) --per-speaker 12 --output bench/results/endpoint-corpus.json,@echo "no TURN_CORPUS: the end of turn is measured on the paused set only (bench all)")

lint: test-deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

# The one way to change what is installed: resolve again, newest allowed versions of everything,
# for every Python and machine in [tool.uv] environments. PyTorch's CPU build is taken from
# $(TORCH_WHEELS), so the lock names it. Then run `make test`, `make test-voice` and
# `make pi-check`, and commit uv.lock saying what changed and why.
# `make lock LOCK_ARGS=` adds what pyproject.toml newly names and keeps every other pin.
LOCK_ARGS ?= --upgrade
lock: $(UV)
	@test -d "$(TORCH_WHEELS)" || { echo "error: $(TORCH_WHEELS) is missing: make lock needs PyTorch's CPU build there (TORCH_WHEELS=DIR)" >&2; exit 1; }
	UV_FIND_LINKS="$(TORCH_WHEELS)" $(UV) lock $(LOCK_ARGS) --python "$(PYTHON_EXE)"

# Whether uv.lock still agrees with pyproject.toml (no network needed for an agreeing lock).
check-lock: $(UV)
	$(UV) lock --check --python "$(PYTHON_EXE)"

# The Pi's installer and the doll on an emulated arm64 Debian 13 (docs/pi-check.md).
pi-check:
	bash scripts/pi-check.sh $(PI_CHECK_ARGS)

# Never while pi-check has its root filesystem mounted: rm would reach into /dev and /proc.
clean:
	@! grep -qF " $(CURDIR)/build/" /proc/mounts || { echo "error: something is mounted under build/ (make pi-check running?): wait for it, or umount it" >&2; exit 1; }
	rm -rf $(VENV) $(STAMP) build
