# Set-up and the everyday commands. Each target installs what it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The second pycti line CI tests (platforms of the 6.x line need a 6.x pycti): the newest 6.9.x.
PYCTI6 ?= pycti>=6.9,<7
VENV6  ?= .venv-pycti6
BIN6   := $(VENV6)/bin

.PHONY: install install-test demo test test-pycti6 bench clean

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

# The whole test suite; no test may reach the network. pycti: the newest 7.x.
test: install-test
	$(BIN)/python -m pytest --block-network

# The same suite on the newest 6.x pycti, in a venv of its own (6.x needs libmagic, as python-magic does).
$(BIN6)/python:
	$(PYTHON) -m venv $(VENV6)
	$(BIN6)/python -m pip install --quiet --upgrade pip

test-pycti6: $(BIN6)/python
	$(BIN6)/pip install --quiet -e '.[test]' -e examples/vtframework-hello -e examples/vtframework-passivedns '$(PYCTI6)'
	$(BIN6)/python -m pytest --block-network -p no:cacheprovider

bench: install-test
	$(BIN)/python benchmarks/quota.py

clean:
	rm -rf $(VENV) $(VENV6) bundle.json .vtframework .pytest_cache
