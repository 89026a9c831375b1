# The README's two commands: `make run` (the greeter on the embedded dev server) and `make test`.
.PHONY: setup run test bench

setup:
	bash scripts/setup.sh

run: setup
	.venv/bin/lkrun bots/greeter.yaml

test: setup
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python -m bench
