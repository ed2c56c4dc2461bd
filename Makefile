# The two commands of the README: `make demo` (the main job, end to end, on local files and
# DuckDB, then compaction of the lake it wrote) and `make test`. Both create .venv and install the
# project on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAKE ?= lake
RECORDS ?= 5000

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

.PHONY: install demo test check lint
install: $(STAMP)

demo: $(STAMP)
	rm -rf $(LAKE) sample-events.jsonl
	$(BIN)/dmd sample --records $(RECORDS) --seed 7 --bad-fraction 0.02 --out sample-events.jsonl
	$(BIN)/dmd run sample-events.jsonl --lake $(LAKE) --format parquet
	$(BIN)/dmd query --lake $(LAKE) \
	  "PIVOT (SELECT partition_date, type FROM all_records) ON type USING count(*) ORDER BY partition_date LIMIT 14"
	$(BIN)/dmd query --lake $(LAKE) \
	  "SELECT 'demand' AS type, count(*) AS live_items FROM demand_current UNION ALL SELECT 'event', count(*) FROM event_current"
	@# objects, rows and query times before and after `dmd compact --min-age 0 --all` (--all: list
	@# the lake just written instead of waiting for its touched markers to age); fails with a clear
	@# message (exit 2) where `dmd compact` does not exist yet
	$(BIN)/python benchmarks/compaction.py --lake $(LAKE) --compact-options="--min-age 0 --all"

test: $(STAMP)
	$(BIN)/pytest -q

check: $(STAMP)
	$(BIN)/dmd generate --check
	$(BIN)/ruff check .
