# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA_DIR := /usr/share/datasets/fashion-mnist

.PHONY: demo test install data clean

$(VENV)/.installed: setup.cfg pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[cpu,dev]"
	# TF Serving's protos for the warm-up file; --no-deps because the package
	# declares the full `tensorflow`, which would install a second TensorFlow.
	$(PY) -m pip install --quiet --no-deps tensorflow-serving-api
	# KerasHub backbones (encoders.from_keras_hub); --no-deps because keras-hub's
	# tensorflow-text dependency would also install the full `tensorflow`.
	$(PY) -m pip install --quiet --no-deps keras-hub tokenizers sentencepiece
	touch $@

install: $(VENV)/.installed

data:
	@if [ -f "$(DATA_DIR)/train-images-idx3-ubyte.gz" ] || [ -n "$$KERAS_SIAMESE_DATA_DIR" ]; then \
		true; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's dataset-fashion-mnist (the real Fashion-MNIST IDX files)"; \
		(apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)); \
	else \
		echo "Fashion-MNIST is missing from $(DATA_DIR). Install it with"; \
		echo "  sudo apt-get install dataset-fashion-mnist"; \
		echo "or put the four *-ubyte.gz files in a directory and set KERAS_SIAMESE_DATA_DIR to it."; \
		exit 1; \
	fi

demo: install data
	$(PY) examples/simclr_fashion_mnist.py

# Two pytest workers (pytest-xdist) on a 2-core machine, at most 4 elsewhere; the multi-replica
# runs share one more process (tests/conftest.py).
test: install data
	$(PY) -m pytest -q -n auto --maxprocesses=4 tests

clean:
	rm -rf $(VENV) runs
