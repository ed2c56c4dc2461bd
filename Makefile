# The two commands of the README: `make demo` (the main job, end to end, on local files and
# DuckDB, then compaction of the lake it wrote) and `make test`. Both create .venv and install the
# project on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The demo writes only into a folder of its own (marked as such), never into `lake`, the default
# --lake of `dmd run`, which may hold a user's own archive.
DEMO ?= demo
LAKE := $(DEMO)/lake
EVENTS := $(DEMO)/sample-events.jsonl
RECORDS ?= 5000

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

.PHONY: install demo test check lint
install: $(STAMP)

demo: $(STAMP)
	@if [ -e $(DEMO) ] && [ ! -e $(DEMO)/.made-by-make-demo ]; then \
	  echo "$(DEMO)/ exists and was not made by make demo; move it, or run: make demo DEMO=another-folder" >&2; exit 2; fi
	rm -rf $(LAKE) $(EVENTS)
	mkdir -p $(DEMO) && touch $(DEMO)/.made-by-make-demo
	$(BIN)/dmd sample --records $(RECORDS) --seed 7 --bad-fraction 0.02 --out $(EVENTS)
	$(BIN)/dmd run $(EVENTS) --lake $(LAKE) --format parquet
	$(BIN)/dmd query --lake $(LAKE) \
	  "SELECT type, count(*) AS records, count(DISTINCT partition_date) AS dates, min(partition_date) AS first, max(partition_date) AS last FROM all_records GROUP BY type ORDER BY type"
	$(BIN)/dmd query --lake $(LAKE) \
	  "PIVOT (SELECT partition_date, type FROM all_records WHERE partition_date IN (SELECT partition_date FROM all_records GROUP BY 1 ORDER BY count(DISTINCT type) DESC, count(*) DESC LIMIT 7)) ON type USING count(*) ORDER BY partition_date"
	$(BIN)/dmd query --lake $(LAKE) \
	  "SELECT 'demand' AS type, count(*) AS live_items FROM demand_current UNION ALL SELECT 'event', count(*) FROM event_current"
	@# objects, rows and query times before and after `dmd compact --min-age 0 --all` (--all: list
	@# the lake just written instead of waiting for its touched markers to age)
	$(BIN)/python benchmarks/compaction.py --lake $(LAKE) --compact-options="--min-age 0 --all"

test: $(STAMP)
	$(BIN)/pytest -q

check: $(STAMP)
	$(BIN)/dmd generate --check
	$(BIN)/ruff check .
