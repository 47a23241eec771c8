# The two quick-start commands: `make run` serves examples/iris, `make test` runs every test.
# `make check` runs the rules: ruff (pinned rules), ruff format, mypy --strict, import contracts.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Extra `mlpack start` flags for `make run`, e.g. RUN_ARGS='--http-port 9000'.
RUN_ARGS ?=
INSTALLED := $(VENV)/.installed-sklearn

.PHONY: run test check install install-test install-check bench clean

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

install-check: $(PY)
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install --quiet -e '.[test,check]'

examples/iris/model.joblib: | $(INSTALLED)
	$(PY) examples/iris/train.py

# Serves examples/iris; once the model is READY the server prints a `curl` line to try.
run: $(INSTALLED) examples/iris/model.joblib
	OPENBLAS_NUM_THREADS=1 $(VENV)/bin/mlpack start examples/iris $(RUN_ARGS)

LINTED := mlpack runtimes tests benchmarks examples
TYPED := mlpack runtimes/sklearn/mlpack_sklearn runtimes/xgboost/mlpack_xgboost \
	runtimes/lightgbm/mlpack_lightgbm runtimes/onnx/mlpack_onnx \
	runtimes/mlflow/mlpack_mlflow runtimes/huggingface/mlpack_huggingface

test: install-test
	$(PY) -m pytest -n 2 --dist loadfile --durations=15 $(PYTEST_ARGS)

check: install-check
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy --strict $(TYPED)
	$(VENV)/bin/lint-imports

bench: install-test
	$(PY) -m benchmarks.iris_rest

clean:
	rm -rf $(VENV) .pytest_cache
