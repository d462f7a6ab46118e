# The two quick-start commands: `make train` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= config.json

.PHONY: train test test-slow lint venv clean

$(VENV)/.installed: environment.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -r environment.txt
	touch $@

venv: $(VENV)/.installed

train: $(VENV)/.installed
	$(PY) train.py -c $(CONFIG)

# The default suite skips tests marked slow (minutes each); CI runs them too.
test: $(VENV)/.installed
	$(PY) -m pytest -q

# pytest exits 5 when no test is marked slow: that is a pass here.
test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow || [ $$? -eq 5 ]

lint: $(VENV)/.installed
	$(PY) -m ruff check .

clean:
	rm -rf saved .pytest_cache
