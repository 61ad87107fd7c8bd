# Two commands: `make lab` runs the whole lab, `make test` runs the tests. Each makes .venv first.
# Offline? Point at a local Keras mnist.npz: MNIST_NPZ=/path/to/mnist.npz make lab
# Another Python: make test PYTHON=python3.13 (the venv is remade for it; VENV=DIR keeps both).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
STAMP := $(VENV)/.installed-$(PYVER)
# The flags `make lab` gives each script, from their one home (mnistlab/lab.py).
LAB_FLAGS = $(shell $(PYTHON) -m mnistlab.lab $(1))

.PHONY: lab quick quick-mlp quick-cnn improved hinton test crashtest test-colab bench clean

# The installed modules byte-compiled once, on every core (pip compiles one at a time; where
# PYTHONDONTWRITEBYTECODE is set, nothing would keep what each process compiles). A module that
# does not compile (another Python's file) is left to fail where it is imported, as with pip; the
# packages' own test suites are left out (TensorFlow's `test` API packages, which it imports, are not),
# and the installed packages that nothing of the lab imports (2-4 s of `make test`'s venv).
COMPILE = $(1)/bin/python -m compileall -qq -j 0 -x '/tests/|/site-packages/(clang|pip|setuptools|pkg_resources|wheel|grpc)/' $(1)/lib || true
$(STAMP): requirements.txt
	$(PYTHON) -m venv --clear $(VENV)
	$(VENV)/bin/pip install --quiet --no-compile --disable-pip-version-check -r requirements.txt
	$(call COMPILE,$(VENV))
	touch $(STAMP)

# Every part at lab settings, then REPORT.md from the run's own results/ and plots/ (the order
# and the flags live in mnistlab/lab.py). Question 4C scores noisy and denoised digits with the
# saved lab CNN (the best of questions 2-3) and MLP.
lab: $(STAMP)
	$(PY) -m mnistlab.lab

# The same on a small subset, in under a minute; writes under quick/. The MLP and the CNN train
# side by side (a quick run is mostly start-up and compiling, one core each), their output kept
# apart where make can (GNU make 4); the autoencoder then scores with both.
SYNC := $(if $(filter 3.%,$(MAKE_VERSION)),,--output-sync=target)
quick: $(STAMP)
	$(MAKE) --no-print-directory -j2 $(SYNC) quick-mlp quick-cnn
	$(PY) denoise_autoencoder.py --quick $(call LAB_FLAGS,denoise_autoencoder)
	$(PY) -m mnistlab.report --out quick

quick-mlp: $(STAMP)
	$(PY) mlp_mnist.py --quick $(call LAB_FLAGS,mlp_mnist)

quick-cnn: $(STAMP)
	$(PY) cnn_mnist.py --quick $(call LAB_FLAGS,cnn_mnist)

improved: $(STAMP)
	$(PY) cnn_mnist.py --model improved

# The experiment on question 2D's gap to Hinton: five arms, one flag changed in each, at
# the study's best L2 factor and its better neighbour in make lab's table
# (experiments/hinton/README.md).
HINTON_L2 := 0.00025 0.0005
# make hinton CLUSTER=tcp://HOST:8786 trains the arms' trials on a Dask cluster (docs/cluster.md).
HINTON := $(PY) mlp_mnist.py --study --out experiments/hinton --l2 $(HINTON_L2) $(if $(CLUSTER),--cluster $(CLUSTER))
hinton: $(STAMP)
	$(HINTON)
	$(HINTON) --study-epochs 100
	$(HINTON) --study-schedule cosine
	$(HINTON) --study-hidden 800 800
	$(HINTON) --study-epochs 100 --study-schedule cosine

test: $(STAMP)
	$(PY) -m pytest

# Every crash point in turn (tests/test_crash.py): the quick scripts and the quick lab killed
# with SIGKILL at each atomic write, before and after its rename, then rerun; its time in docs/bad-input.md.
crashtest: $(STAMP)
	MNISTLAB_CRASHTEST=1 $(PY) -m pytest tests/test_crash.py

# The project on Colab's own versions (requirements-colab.txt, Python 3.13): the fast tests, then
# the three scripts' quick runs and the report, whose stderr must stay empty (no CUDA probe).
COLAB_PYTHON ?= python3.13
COLAB_VENV ?= .venv-colab
COLAB_STAMP := $(COLAB_VENV)/.installed
$(COLAB_STAMP): requirements-colab.txt
	$(COLAB_PYTHON) -m venv --clear $(COLAB_VENV)
	$(COLAB_VENV)/bin/pip install --quiet --no-compile --disable-pip-version-check -r requirements-colab.txt
	$(call COMPILE,$(COLAB_VENV))
	touch $(COLAB_STAMP)

test-colab: $(COLAB_STAMP)
	$(COLAB_VENV)/bin/python -m pytest -m "not slow"
	$(COLAB_VENV)/bin/python -m pytest tests/test_report.py tests/test_colab.py

bench: $(STAMP)
	$(PY) bench/bench.py

clean:
	rm -rf quick .pytest_cache
