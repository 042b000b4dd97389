# Two commands do all set-up on a fresh machine with Python 3.10+ and make:
#   make lab    create .venv on first use and open JupyterLab on notebooks/
#   make test   create .venv on first use and run every check CI runs
# Also: make execute [NB=notebooks/NN_topic.ipynb]  re-execute notebooks in place (refresh stored outputs)
#       make test-colab                             the tests again under Google Colab's versions (.venv-colab)
#       make lock                                   rewrite requirements.lock from the venv

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NB ?= notebooks/[0-9][0-9]_*.ipynb

# TensorFlow's C++ log must not leak into notebook outputs (set before TensorFlow is imported).
export TF_CPP_MIN_LOG_LEVEL := 3
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# The kernel must not forward output written straight to file descriptor 2 (TensorFlow's import-time absl
# lines): nbval's kernel does not capture it, so stored outputs would never match a test run.
# Timing metadata and editor metadata are dropped; only cell tags, kernelspec and language_info are kept.
EXECUTE := $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	--ExecutePreprocessor.timeout=600 \
	--ExecutePreprocessor.record_timing=False \
	--ExecutePreprocessor.extra_arguments="['--IPKernelApp.capture_fd_output=False']" \
	--ClearMetadataPreprocessor.enabled=True \
	--ClearMetadataPreprocessor.preserve_cell_metadata_mask=tags \
	--ClearMetadataPreprocessor.preserve_nb_metadata_mask="[('kernelspec',), ('language_info',)]"

.PHONY: venv lab test test-colab execute lock clean

# JupyterLab settings installed into the venv: no "get notified about official Jupyter news?" pop-up on first
# open, no update checks (jupyter/overrides.json; checked by tests/test_repository.py).
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings

# requirements.lock pins what produced the stored outputs, for Python 3.11. On another Python the ranges in
# requirements.txt are installed instead (the notebooks run, but stored outputs may differ in places).
$(STAMP): requirements.lock requirements.txt pyproject.toml jupyter/overrides.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if $(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then \
		$(BIN)/python -m pip install --quiet -r requirements.lock; \
	else \
		echo "Python is not 3.11: installing the ranges in requirements.txt instead of the lock"; \
		$(BIN)/python -m pip install --quiet -r requirements.txt; \
	fi
	$(BIN)/python -m pip install --quiet --no-deps -e .
	mkdir -p $(LAB_SETTINGS) && cp jupyter/overrides.json $(LAB_SETTINGS)/overrides.json
	touch $(STAMP)

venv: $(STAMP)

# Jupyter refuses to start as root unless told to (containers and cloud shells often run as root).
LAB_ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: venv
	$(BIN)/jupyter lab --notebook-dir=notebooks $(LAB_ROOT_FLAG) $(LAB_ARGS)

test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/zizmor --offline --min-severity medium .github/workflows/
	$(BIN)/pytest

# A second venv with Google Colab's versions (requirements-colab.txt) and the newest Python TensorFlow 2.20
# supports. Colab's own packages first, then this repository's package on top, non-editable, as the notebooks'
# Setup cell installs it (the pins make pip refuse to replace any of Colab's versions).
# The first interpreter that really runs (a pyenv shim may exist without its version being active).
COLAB_PYTHON_CANDIDATES := python3.13 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) python3.12 python3
COLAB_PYTHON ?= $(firstword $(foreach p,$(COLAB_PYTHON_CANDIDATES),$(shell $(p) -c "import sys; print(sys.executable)" 2>/dev/null)))
COLAB_VENV := .venv-colab
CBIN := $(COLAB_VENV)/bin
COLAB_STAMP := $(COLAB_VENV)/.installed

$(COLAB_STAMP): requirements-colab.txt pyproject.toml
	test -x $(CBIN)/python || $(COLAB_PYTHON) -m venv $(COLAB_VENV)
	$(CBIN)/python -m pip install --quiet -c requirements-colab.txt tensorflow keras numpy matplotlib tqdm
	$(CBIN)/python -m pip install --quiet -c requirements-colab.txt ".[test]"
	touch $(COLAB_STAMP)

test-colab: $(COLAB_STAMP)
	$(CBIN)/python -m pip install --quiet --no-deps --force-reinstall -c requirements-colab.txt .
	$(CBIN)/python -c "import sys, tensorflow as tf, keras, numpy, matplotlib; print('Python', sys.version.split()[0], '| TensorFlow', tf.__version__, '| Keras', keras.__version__, '| NumPy', numpy.__version__, '| Matplotlib', matplotlib.__version__)"
	cd /tmp && $(abspath $(CBIN))/python -c "import helpers, pathlib; assert 'site-packages' in str(pathlib.Path(helpers.__file__)), helpers.__file__"
	$(CBIN)/pytest tests notebooks  # against the installed copy; helpers/' doctests run in make test

execute: venv
	for nb in $(NB); do echo "executing $$nb"; $(EXECUTE) "$$nb" || exit 1; done

lock: venv
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e ' > requirements.lock

clean:
	rm -rf $(VENV) $(COLAB_VENV)
