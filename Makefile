VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: setup test book clean

# Create/refresh .venv (a fast no-op when it is already complete).
setup:
	bash scripts/setup.sh

test: setup
	$(PYTHON) -m pytest -q

# Run the experiments with the quick profile and build the book.
book: setup
	$(VENV)/bin/wdlg run --profile quick

# Remove generated outputs (keeps .venv and downloaded data/).
clean:
	rm -rf results book/_build book/notebooks .pytest_cache build dist *.egg-info
	find . \( -path ./$(VENV) -o -path ./.git \) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
