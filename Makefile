# Two commands on a fresh machine with Python >= 3.11 and pip:
#   make demo   set up .venv, install, run the seed example (writes figures/*.png)
#   make test   set up .venv, install with test extras, run the test suite
# Also: make test-slow, make test-arviz1 (ArviZ >= 1.0 in a second venv on Python >= 3.12),
#       make docs (the documentation site, mkdocs build --strict into site/), make lint
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow test-all test-arviz1 docs docs-serve lint clean venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) examples/full_wppm_fit_example.py --out-dir figures

# pytest-xdist: one worker per core (at most 4), a test file's tests on one worker (its
# module fixtures computed once); JAX's compilation cache in .jax_cache/ (tests/conftest.py);
# the slowest tests are listed at the end
XDIST  := -n auto --maxprocesses 4 --dist loadfile --durations=15

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(XDIST)

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(XDIST)

test-all: $(STAMP)
	$(PY) -m pytest -q $(XDIST)

# ArviZ >= 1.0 needs Python >= 3.12: .ci/arviz1 finds one (PYTHON312=..., python3.12, pyenv),
# makes .venv-arviz1 and runs tests/test_arviz_compat.py there
test-arviz1:
	bash .ci/arviz1

DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(VENV)/bin/mkdocs build --strict

docs-serve: $(DOCS_STAMP)
	$(VENV)/bin/mkdocs serve

lint: $(STAMP)
	$(VENV)/bin/ruff check psyphy_numpyro tests examples benchmarks

clean:
	rm -rf $(VENV) .venv-arviz1 site figures .pytest_cache .jax_cache
