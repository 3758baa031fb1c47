# The two commands of the README: `make run` and `make test`. Everything else is a step of theirs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: venv up down status proto lint test unit run bench clean-stack

## venv: create .venv (if missing) and install the project with its dev extras, pinned by constraints.txt
venv: $(INSTALLED)
$(INSTALLED): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

## up: build (first time) and start Kafka (KRaft) + FerretDB; waits until both really answer
up: venv
	$(BIN)/python stack/localstack.py up

## down: stop exactly the servers `make up` started
down:
	$(PYTHON) stack/localstack.py down

## status: say what runs
status:
	$(PYTHON) stack/localstack.py status

## proto: regenerate walkthroughs/_pb from proto/ with the pinned protoc (grpcio-tools)
proto: venv
	$(BIN)/python proto/generate.py

## lint: ruff + mypy
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy walkthroughs tests bench

## unit: the fast tests that need no server
unit: venv
	$(BIN)/pytest -m "not integration"

## test: set up, start the local stack, run every test
test: venv up lint
	$(BIN)/pytest

## run: set up, start the stack, run the dataflow on sample traffic, print the result
run: export WALKTHROUGHS_KAFKA_BOOTSTRAP ?= 127.0.0.1:$(or $(STACK_KAFKA_PORT),9092)
run: export WALKTHROUGHS_MONGO_URI ?= mongodb://127.0.0.1:$(or $(STACK_MONGO_PORT),27017)
run: venv up
	$(BIN)/python -m walkthroughs generate --create-topics
	WALKTHROUGHS_STOP_AT_END=1 $(BIN)/python -m bytewax.run dataflow -w 2
	$(BIN)/python -m walkthroughs summary

## bench: every benchmark (not part of `make test`); each prints JSON lines, see bench/README.md
bench: venv up
	$(BIN)/python -m bench.engine
	$(BIN)/python -m bench.framing
	$(BIN)/python -m bench.hotkey
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.e2e --events $(or $(BENCH_EVENTS),1000000)
	$(BIN)/python -m bench.resume --keys $(or $(BENCH_KEYS),1000000)
	$(BIN)/python -m bench.mongo
	$(BIN)/python -m bench.latency
	$(BIN)/python -m bench.scaleout

## clean-stack: stop the stack and delete its data and logs (the build cache stays)
clean-stack: down
	rm -rf .stack
