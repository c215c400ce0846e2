# The two commands of the quick start: `make demo` and `make test`.
# Both set up .venv/ first (idempotent: a no-op once it is complete).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Test processes (pytest-xdist), one a core up to 4; each test file stays in
# one process, so its module fixtures (trained toy checkpoints) run once.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))

.PHONY: setup demo test test-stacks benchmark operators compare \
	deploy-benchmark clean-venv

# MMCV_OPS=compiled make setup: mmcv built with its compiled ops instead of
# mmcv-lite (scripts/setup_env.sh says more).
setup:
	@VENV=$(abspath $(VENV)) bash scripts/setup_env.sh

demo: setup
	$(PY) tools/toy_demo.py

test: setup
	$(PY) -m pytest tests -rs -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# A part of the suite on three stacks: the pinned one with compiled mmcv,
# OpenMMLab's last release (torch 2.1) and OneDL's fork (venvs in .stacks/).
test-stacks:
	bash scripts/test_stacks.sh

benchmark: setup
	$(PY) benchmarks/fasternet_speed.py

# The paper's operator study (Table 1) and FasterNet with each spatial mixer.
operators: setup
	$(PY) benchmarks/operator_study.py
	$(PY) benchmarks/mixer_study.py

# FasterNet-T0/T1/T2 against GhostNetV2-1.0/1.3/1.6 (and MobileNetV2,
# CSPNeXt-tiny): backbones and whole detectors, one process.
compare: setup
	$(PY) benchmarks/backbone_comparison.py

# PyTorch eager and deploy mode against ONNX Runtime and OpenVINO, one run.
deploy-benchmark: setup
	$(PY) benchmarks/deploy_speed.py

clean-venv:
	rm -rf $(VENV)
