# The two commands the README gives: `make demo` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO := build/demo
DEMO_AS_OF := 2016-01-15

.PHONY: setup demo test lint format docs bench clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN)/dmtwatch synth --patients 300 --seed 7 --out $(DEMO)/clinic
	$(BIN)/dmtwatch import --data $(DEMO)/clinic --db sqlite:///$(DEMO)/clinic.db
	$(BIN)/dmtwatch check --db sqlite:///$(DEMO)/clinic.db --as-of $(DEMO_AS_OF) --format json --out $(DEMO)/worklist.json
	$(BIN)/dmtwatch check --db sqlite:///$(DEMO)/clinic.db --as-of $(DEMO_AS_OF) --limit 30 --summary
	$(BIN)/dmtwatch audit --db sqlite:///$(DEMO)/clinic.db --as-of $(DEMO_AS_OF) --format html --out $(DEMO)/audit.html
	$(BIN)/dmtwatch audit --db sqlite:///$(DEMO)/clinic.db --as-of $(DEMO_AS_OF) --format pdf --out $(DEMO)/audit.pdf
	$(BIN)/dmtwatch synth --patients 300 --seed 7 --format fhir --out $(DEMO)/fhir
	$(BIN)/dmtwatch check --fhir $(DEMO)/fhir/ndjson --as-of $(DEMO_AS_OF) --format fhir --out $(DEMO)/findings.fhir.json
	@echo "The whole worklist as JSON: $(DEMO)/worklist.json"
	@echo "The same clinic as FHIR R4: $(DEMO)/fhir/ (Bulk NDJSON and Bundles); its findings as DetectedIssue: $(DEMO)/findings.fhir.json"
	@echo "The outcomes audit: $(DEMO)/audit.html and $(DEMO)/audit.pdf"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Starts a throwaway PostgreSQL server (installing Debian's package if missing) for the
# store tests, runs every test, then stops the server.
test: lint
	scripts/with-postgres.sh $(BIN)/python -m pytest

docs: setup
	$(BIN)/dmtwatch docs --out docs/findings --vignettes tests/vignettes

bench: setup
	$(BIN)/python benchmarks/check_scale.py

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
