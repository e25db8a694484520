# medcnn: `make setup`, `make test`, `make reproduce-<study> SCALE=smoke|cpu|full`, `make plan-<study> SCALE=...`, `make report-<study>`, `make readme`.
PYTHON_BOOT ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SCALE ?= smoke
STUDIES := kth cnmc an2dl allgray chromosome
export MPLBACKEND ?= Agg
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup test lint readme reproduce-all benchmarks $(addprefix reproduce-,$(STUDIES)) $(addprefix report-,$(STUDIES)) \
	$(addprefix plan-,$(STUDIES))

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -e .
	touch $@

# Test-only extras: the JAX CPU build (the PyDataset input path is tested under KERAS_BACKEND=jax) and ruff.
$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# The suite runs on TEST_WORKERS processes (pytest-xdist), handed one test at a time, longest first (tests/conftest.py):
# on 2 cores the notebooks' single-threaded parts overlap (895 s with 2 workers here, free cores).
TEST_WORKERS ?= 2
test: $(VENV)/.dev-installed
	$(PY) -m pytest -q -n $(TEST_WORKERS) --maxschedchunk=1

lint: $(VENV)/.dev-installed
	$(PY) -m ruff check medcnn tests benchmarks

# Run a study's notebook headlessly: it trains every run (REUSE_RUNS=False). The executed copy lands beside its
# results (not committed). `report-<study>` reuses the recorded runs in runs/ whose fingerprint matches and trains
# the rest (a record made with older code no longer matches, and is trained again). DATA_DIR=... reads the data
# from another folder; OUTPUT_DIR=... writes there instead of results/<study>/<SCALE> (and resumes from its runs/).
REUSE_RUNS ?= False
STUDY_OUT = $(abspath $(or $(OUTPUT_DIR),results/$*/$(SCALE)))
# PRECISION=mixed_bfloat16 trains in bfloat16 (faster on a CPU with AVX-512 bf16 / AMX; see
# benchmarks/train_throughput.py); empty: float32 on a CPU, mixed precision on a GPU (medcnn.hardware).
PRECISION ?=
$(addprefix reproduce-,$(STUDIES)): reproduce-%: setup
	@if [ ! -f notebooks/$*.ipynb ]; then \
		echo "notebooks/$*.ipynb does not exist yet: nothing to reproduce for '$*' (see the open issues)."; \
		exit 2; \
	fi
	mkdir -p "$(STUDY_OUT)"
	MEDCNN_PRECISION=$(PRECISION) $(PY) -m papermill notebooks/$*.ipynb "$(STUDY_OUT)/executed.ipynb" \
		-p SCALE $(SCALE) -p REUSE_RUNS $(REUSE_RUNS) $(if $(DATA_DIR),-p DATA_DIR "$(abspath $(DATA_DIR))") \
		$(if $(OUTPUT_DIR),-p OUTPUT_DIR "$(STUDY_OUT)") --cwd notebooks --log-output --progress-bar
	@echo "Results: $(STUDY_OUT)/report.md"

$(addprefix report-,$(STUDIES)): report-%: setup
	$(MAKE) --no-print-directory reproduce-$* SCALE=$(SCALE) REUSE_RUNS=True

# Before a long run: list the runs SCALE would train and estimate their time on this CPU from measured rates
# (medcnn.experiment.estimate); nothing is trained and no image is decoded.
$(addprefix plan-,$(STUDIES)): plan-%: setup
	$(PY) -m medcnn plan $* --scale $(SCALE)

# Regenerate the README's result tables from the committed results/<study>/<scale>/results.json.
readme: setup
	$(PY) -c "from medcnn.cli import update_readme; print(update_readme())"

reproduce-all: setup
	@for study in $(STUDIES); do \
		if [ -f notebooks/$$study.ipynb ]; then $(MAKE) --no-print-directory reproduce-$$study SCALE=$(SCALE) || exit 1; \
		else echo "skipping $$study: notebooks/$$study.ipynb does not exist yet"; fi; \
	done

benchmarks: setup
	@for bench in benchmarks/*.py; do $(PY) $$bench || exit 1; done

# Your own labelled images (notebooks/own_data.ipynb): `make own-data DATA_DIR=path/to/folder` (one sub-folder of
# images per class) [CSV=table.csv of file,label,group] [OUTPUT_DIR=...] [SCALE=smoke|cpu|full]
# [GROUP_PATTERN='^(P[0-9]+)_'] (its first group is the patient, case or slide id in a file name; write $ as $$).
# Results, model.keras and the executed notebook go to OUTPUT_DIR, by default results/own_data/<folder name>/.
OWN_DATA_NAME = $(if $(DATA_DIR),$(notdir $(abspath $(DATA_DIR))),$(basename $(notdir $(CSV))))
OWN_DATA_OUT = $(abspath $(or $(OUTPUT_DIR),results/own_data/$(OWN_DATA_NAME)))
.PHONY: own-data
own-data: setup
	@if [ -z "$(DATA_DIR)$(CSV)" ]; then echo "Pass DATA_DIR=path/to/folder (one sub-folder of images per class) or CSV=..."; exit 2; fi
	mkdir -p "$(OWN_DATA_OUT)"
	MEDCNN_PRECISION=$(PRECISION) $(PY) -m papermill notebooks/own_data.ipynb "$(OWN_DATA_OUT)/executed.ipynb" \
		$(if $(DATA_DIR),-r DATA_DIR "$(abspath $(DATA_DIR))") $(if $(CSV),-r CSV "$(abspath $(CSV))") \
		-r OUTPUT_DIR "$(OWN_DATA_OUT)" -p SCALE $(SCALE) -p REUSE_RUNS $(REUSE_RUNS) \
		$(if $(GROUP_PATTERN),-r GROUP_PATTERN '$(GROUP_PATTERN)') --cwd notebooks --log-output --progress-bar
	@echo "Results: $(OWN_DATA_OUT)/report.md; model: $(OWN_DATA_OUT)/model.keras"
