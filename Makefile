# Two commands on a fresh Linux machine with Python 3.11:
#   make book   build the HTML book, every page executed, into _build/html
#   make test   run every test: unit tests, graded exercises, notebooks (nbval), the -W book build
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv book test unit notebooks book-strict browser assets clean

# The environment: tools/setup_course.py (the same script a learner runs on macOS or Windows)
# makes .venv, installs the package with every extra of pyproject.toml (learner, grade, book, test),
# the text corpus, and JupyterLab's settings for the course (jupyter_config/overrides.json).
$(STAMP): requirements.txt pyproject.toml tools/setup_course.py jupyter_config/overrides.json
	$(PYTHON) tools/setup_course.py --venv $(VENV) --extras all
	touch $@

venv: $(STAMP)

book: $(STAMP) assets
	$(BIN)/jupyter-book build . --builder html

unit: $(STAMP)
	$(BIN)/python -m pytest tests --ignore=tests/browser

# --- Book: offline assets, notebooks under nbval with time budgets, the strict HTML build ---
# Offline HTML: MathJax is installed from the npm registry at build time (exact version in
# package.json, no lock file) and copied where _config.yml's html_static_path picks it up.
ASSETS_STAMP := _build/.offline-assets-stamp
$(ASSETS_STAMP): package.json
	@command -v npm >/dev/null || { echo "make assets: npm (Node.js 18+) is needed to install MathJax" \
	    "for the offline HTML book (package.json); install Node.js and rerun"; exit 1; }
	npm install --no-package-lock --no-audit --no-fund --ignore-scripts
	rm -rf _build/offline && mkdir -p _build/offline/mathjax
	cp -R node_modules/mathjax/es5/. _build/offline/mathjax/
	rm -f _build/offline/mathjax/latest.js  # loads "the latest MathJax" from a CDN: never used
	touch $@

assets: $(ASSETS_STAMP)

# Every text notebook nbval executes: the book's pages, plus whatever is appended to
# NOTEBOOKS_EXTRA (e.g. exercises/*.py and solutions/*.py, which are jupytext py:percent).
BOOK_PAGES      := book/intro.md $(sort $(wildcard book/[0-9][0-9]_*.md)) $(wildcard book/instructors.md)
NOTEBOOKS_EXTRA ?= $(sort $(wildcard exercises/ch[0-9][0-9]_*.py solutions/ch[0-9][0-9]_*.py))
NOTEBOOKS       := $(BOOK_PAGES) $(NOTEBOOKS_EXTRA)
NB_DIR          := _build/notebooks

# Each notebook must finish within its front matter's course.budget_s (tests_book/nbbudget.py).
# tests_book/test_nbbudget.py first checks that the budget check itself fails when it should.
notebooks: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests_book/test_nbbudget.py
	rm -rf $(NB_DIR)
	$(BIN)/python tests_book/convert.py --out $(NB_DIR) $(NOTEBOOKS)
	PYTHONPATH=tests_book $(BIN)/python -m pytest -p nbbudget -p no:cacheprovider \
	    --nbval-lax --nbval-current-env --nb-times-json $(NB_DIR)/times.json $(NB_DIR)

# Warnings are errors; --all re-reads every page, so an unchanged page's warning is not hidden.
# The old HTML is removed first, so no page left from an earlier build is checked (or published).
book-strict: $(STAMP) assets
	rm -rf _build/html _build/jupyter_execute
	$(BIN)/jupyter-book build . --builder html --all -W --keep-going
	$(BIN)/python -m pytest -p no:cacheprovider tests_book/test_front_matter.py tests_book/test_offline_html.py \
	    tests_book/test_download_launch.py

# The built book in Debian's headless Chromium (Playwright): console errors, math, figures, and the
# attention explorer; screenshots in _build/screenshots. Skips, saying why, where Chromium is absent.
browser: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/browser

# Order: unit tests, then the notebooks, then the strict build, then the browser test of that build.
test: unit notebooks book-strict browser

clean:
	rm -rf _build
