# Two commands on a fresh machine: `make demo` runs the platform's main job, `make test` the tests.
# Both create .venv when missing and (re)install when a requirements file changes.

VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: venv demo test validate plan bench clean

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml native/setup.py native/dataplatform_avro.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	# The Avro codec's hot loops in C (gcc + Python headers); the code falls back to Python without it.
	$(BIN)/pip install -q --disable-pip-version-check --no-deps ./native
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/dataplatform demo

test: venv
	$(BIN)/pytest -n 2 --dist loadgroup

validate: venv
	$(BIN)/dataplatform validate

plan: venv
	$(BIN)/dataplatform plan

bench: venv
	$(BIN)/python bench/anonymize.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/plan_scale.py

clean:
	rm -rf $(VENV) .dataplatform .pytest_cache
