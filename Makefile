# Two entry points that do all set-up themselves on a fresh machine:
#   make demo   creates .venv if missing, installs, runs scenarios/quickstart.yaml offline
#   make test   same set-up, then the test suite
#   make docs   same set-up plus the docs tooling, then the site (mkdocs.yml) into site/
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast test-all test-slow test-deployment lint docs setup clean

setup: $(STAMP)

# Re-installs only when pyproject.toml or this Makefile changes.
$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, at the version constraints.txt pins: the CPU wheel lies on disk; any
	# other torch request would make pip fetch a multi-GB CUDA build.
	$(BIN)/pip install --quiet -c constraints.txt torch
	# every extra (pyproject.toml), at this project's pinned versions
	$(BIN)/pip install --quiet -c constraints.txt -e '.[all,dev]'
	# torchattacks 3.5.1 pins requests~=2.25.1 and asks for torchvision in its metadata;
	# its code needs neither, so it comes without deps (the attacks extra brings its needs).
	$(BIN)/pip install --quiet --no-deps torchattacks==3.5.1
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fedrobust run quickstart

# three pytest workers: most of an end-to-end test is waiting on a Flower simulation's
# start-up, so three at once fill the 2 cores (pytest-xdist; PYTEST_WORKERS=0 runs serially)
PYTEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS)

# the edit loop: no Flower simulation (e2e), no slow or deployment test
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) -m 'not slow and not deployment and not e2e'

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

# the long end-to-end measurements (poisoning claims, report rendering, the example
# notebook, which needs the notebook extra): ~20 min
test-slow: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[all,dev,notebook]'
	$(BIN)/python -m pytest -q -m slow

# a real SuperLink and SuperNodes on loopback, with TLS and node authentication: ~6 min
test-deployment: $(STAMP)
	$(BIN)/python -m pytest -q -m deployment

# the documentation site (mkdocs.yml) into site/, with --strict: a broken link or a
# missing reference fails; the scenario and CLI references are generated from the code
docs: $(STAMP)
	test -x $(BIN)/mkdocs || $(BIN)/pip install --quiet -c constraints.txt -e '.[all,dev,docs]'
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf runs site .pytest_cache
