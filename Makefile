# The README's two commands: `make run` (the greeter on the embedded dev server) and `make test`.
.PHONY: setup run test bench soak

setup:
	bash scripts/setup.sh

run: setup
	.venv/bin/lkrun bots/greeter.yaml

test: setup
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python -m bench

# Network faults, outside CI (root: ip netns + veth): a 30 s partition and a slow, stalling link.
.PHONY: faults
faults:
	.venv/bin/python scripts/faults.py

# 20 data bots + one voice call in one process for 30 minutes; fails on a lost message or a growing
# RSS / fd / task count (scripts/soak.py --help; MINUTES=10 make soak for a shorter run).
MINUTES ?= 30
soak: setup
	.venv/bin/python scripts/soak.py --minutes $(MINUTES)
