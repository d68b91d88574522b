# Set-up and the everyday commands. Each target installs what it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install install-test demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The package and its console script `vtframework`.
install: $(BIN)/python
	$(BIN)/pip install --quiet .

# Editable, plus the test tools and the example third-party plugins the tests discover.
install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]' -e examples/vtframework-hello -e examples/vtframework-passivedns

# The main job, offline: enrich the recorded observables into bundle.json.
demo: install
	$(BIN)/vtframework enrich --replay -o bundle.json

# The whole test suite; no test may reach the network.
test: install-test
	$(BIN)/python -m pytest --block-network

bench: install-test
	$(BIN)/python benchmarks/quota.py

clean:
	rm -rf $(VENV) bundle.json .vtframework .pytest_cache
