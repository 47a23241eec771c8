# The two quick-start commands: `make run` serves examples/iris, `make test` runs every test.
# `make check` runs the rules: ruff (pinned rules), ruff format, mypy --strict, import contracts.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test check install install-test install-check bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY)
	$(PY) -m pip install --quiet -e '.[sklearn]'

install-test: $(PY)
	$(PY) -m pip install --quiet -e '.[test]'

install-check: $(PY)
	$(PY) -m pip install --quiet -e '.[test,check]'

examples/iris/model.joblib: | install
	$(PY) examples/iris/train.py

run: install examples/iris/model.joblib
	OPENBLAS_NUM_THREADS=1 $(VENV)/bin/mlpack start examples/iris

LINTED := mlpack runtimes tests benchmarks examples
TYPED := mlpack runtimes/sklearn/mlpack_sklearn runtimes/xgboost/mlpack_xgboost \
	runtimes/lightgbm/mlpack_lightgbm runtimes/onnx/mlpack_onnx

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
