# The two quick-start commands: `make train` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= config.json

.PHONY: train test venv clean

$(VENV)/.installed: environment.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -r environment.txt
	touch $@

venv: $(VENV)/.installed

train: $(VENV)/.installed
	$(PY) train.py -c $(CONFIG)

test: $(VENV)/.installed
	$(PY) -m pytest -q

clean:
	rm -rf saved .pytest_cache
