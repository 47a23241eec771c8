# The two quick-start commands: `make run` serves examples/iris, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test install install-test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY)
	$(PY) -m pip install --quiet -e '.[sklearn]'

install-test: $(PY)
	$(PY) -m pip install --quiet -e '.[test]'

examples/iris/model.joblib: | install
	$(PY) examples/iris/train.py

run: install examples/iris/model.joblib
	OPENBLAS_NUM_THREADS=1 $(VENV)/bin/mlpack start examples/iris

test: install-test
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

bench: install-test
	$(PY) -m benchmarks.iris_rest

clean:
	rm -rf $(VENV) .pytest_cache
