VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: setup test unit book book-record check-book clean

# Create/refresh .venv (a fast no-op when it is already complete).
setup:
	bash scripts/setup.sh

# The full check (CI runs exactly this): unit tests, then the quick book is executed and built
# (every notebook runs; -W), then the built book is opened in a real browser.
test: unit book check-book

# Unit and behaviour tests only (a few minutes).
unit: setup
	$(PYTHON) -m pytest -q

# Run the experiments with the quick profile and build the book.
book: setup
	$(VENV)/bin/wdlg run --profile quick

# Build the book of record from its archive in record/book_record/ (computes no attack).
book-record: setup
	$(VENV)/bin/wdlg book --from record --profile record

# Open the built book in headless Chromium (Debian's chromium + playwright-python, no browser
# download): images load, no tracebacks, equations rendered; screenshots in artifacts/.
check-book: setup
	$(PYTHON) scripts/browser_check.py

# Remove generated outputs (keeps .venv and downloaded data/).
clean:
	rm -rf results book/_build book/notebooks book/course/labs book/course/student .pytest_cache build dist *.egg-info
	find . \( -path ./$(VENV) -o -path ./.git \) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
