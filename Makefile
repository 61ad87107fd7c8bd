# Two commands: `make lab` runs the lab, `make test` runs the tests. Each makes .venv first.
# Offline? Point at a local Keras mnist.npz: MNIST_NPZ=/path/to/mnist.npz make lab
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: lab quick test clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

lab: $(STAMP)
	$(PY) mlp_mnist.py --study

quick: $(STAMP)
	$(PY) mlp_mnist.py --quick

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf quick .pytest_cache
