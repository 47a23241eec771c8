# The two quick-start commands: `make run` serves examples/iris, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Extra `mlpack start` flags for `make run`, e.g. RUN_ARGS='--http-port 9000'.
RUN_ARGS ?=
INSTALLED := $(VENV)/.installed-sklearn

.PHONY: run test install install-test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Installs with progress on the terminal: uv when it can be had, pip otherwise
# (scripts/venv-install; MLPACK_USE_UV=0 for pip only). Done again only when pyproject.toml changes.
$(INSTALLED): pyproject.toml | $(PY)
	scripts/venv-install $(VENV) -e '.[sklearn]'
	@touch $@

install: $(INSTALLED)

install-test: $(PY)
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install --quiet --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install --quiet -e '.[test]'

examples/iris/model.joblib: | $(INSTALLED)
	$(PY) examples/iris/train.py

# Serves examples/iris; once the model is READY the server prints a `curl` line to try.
run: $(INSTALLED) examples/iris/model.joblib
	OPENBLAS_NUM_THREADS=1 $(VENV)/bin/mlpack start examples/iris $(RUN_ARGS)

test: install-test
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

bench: install-test
	$(PY) -m benchmarks.iris_rest

clean:
	rm -rf $(VENV) .pytest_cache
