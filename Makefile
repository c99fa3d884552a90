# Two commands matter: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)
ZAPIER := integrations/zapier
ZAPIER_STAMP := $(ZAPIER)/node_modules/.installed-$(shell sha1sum $(ZAPIER)/package-lock.json | cut -c1-12)
BROWSER := tests/browser
BROWSER_STAMP := $(BROWSER)/node_modules/.installed-$(shell sha1sum $(BROWSER)/package-lock.json | cut -c1-12)

.PHONY: run test lint typecheck bench clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP)
	$(PY) -m web.launcher

# The Zapier app's npm packages (zapier-platform-core), for its tests.
$(ZAPIER_STAMP): $(ZAPIER)/package-lock.json
	cd $(ZAPIER) && npm ci --no-audit --no-fund --loglevel=error
	rm -f $(ZAPIER)/node_modules/.installed-* && touch $@

# axe-core, which the browser tests inject into pages to check their accessibility.
$(BROWSER_STAMP): $(BROWSER)/package-lock.json
	cd $(BROWSER) && npm ci --no-audit --no-fund --loglevel=error
	rm -f $(BROWSER)/node_modules/.installed-* && touch $@

# Runs the suite on SQLite and PostgreSQL (PUENTE_TEST_DATABASES=sqlite to run on SQLite only).
test: $(STAMP) $(ZAPIER_STAMP) $(BROWSER_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench.e2e

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache $(ZAPIER)/node_modules \
		$(BROWSER)/node_modules
