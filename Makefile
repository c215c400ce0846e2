# The two commands of the quick start: `make demo` and `make test`.
# Both set up .venv/ first (idempotent: a no-op once it is complete).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test benchmark clean-venv

setup:
	@VENV=$(abspath $(VENV)) bash scripts/setup_env.sh

demo: setup
	$(PY) tools/demo.py

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)

benchmark: setup
	$(PY) benchmarks/fasternet_speed.py

clean-venv:
	rm -rf $(VENV)
