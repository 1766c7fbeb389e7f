# `make test` and `make demo` do all set-up on a fresh machine: a virtualenv in .venv,
# the CPU build of torch first (a plain `torch` would pull a multi-GB CUDA build), then mmpo.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmpo-installed

.PHONY: install test demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@# WordNet 3.0 for the CHAIR / AMBER lemmatizer (Debian's wordnet-base; skipped where apt is absent or not root)
	test -f /usr/share/wordnet/index.noun || ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && apt-get install -y -q wordnet-base >/dev/null; }
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

demo: $(STAMP)
	$(VENV)/bin/mmpo demo --out demo_out

clean:
	rm -rf $(VENV) demo_out
