# The two commands a newcomer needs: `make run` and `make test`. The rest are for trainers
# and operators. Every target creates the Python 3.10 environment first if needed.
SHELL := /bin/bash
ENV := . scripts/env.sh &&

.PHONY: run test setup train validate test-nlu test-stories review bench bench-faults bench-soak bench-campaign lock clean

run:  ## the bot in the sandbox (or on a real number if WHATSAPP_* are set)
	scripts/run

test:  ## all tests
	scripts/test

setup:  ## create .venv with the pinned dependencies
	scripts/bootstrap

train: setup  ## retrain the model after editing data/, domain.yml or config.yml
	scripts/train-if-needed

validate: setup  ## check training data, domain, stories and the texts of every language for mistakes
	$(ENV) .venv/bin/rasa data validate && .venv/bin/python scripts/generate_catalog_nlu.py --check && .venv/bin/python scripts/check_locales.py

test-nlu: setup  ## NLU accuracy on held-out data (results/nlu); fails below the thresholds
	$(ENV) .venv/bin/python scripts/evaluate_nlu.py --out results/nlu

test-stories: setup  ## the dialogue test stories in tests/stories on the current model
	$(ENV) .venv/bin/rasa test core --model "$$(scripts/train-if-needed)" --stories tests/stories --out results/stories --fail-on-prediction-errors

review: setup  ## messages the bot did not understand (last 7 days, DAYS=n) as NLU YAML to label, a file per language
	$(ENV) .venv/bin/python scripts/review_fallbacks.py --endpoints $${RASA_ENDPOINTS} --days $${DAYS:-7} --out-dir results/review

bench: setup  ## latency/memory benchmark against Rasa's REST channel
	$(ENV) .venv/bin/python bench/benchmark.py

# The benchmarks of faults, soak and campaigns (README, "Performance"); options in BENCH_ARGS,
# e.g. make bench-faults BENCH_ARGS="--rounds 5". They print numbers; they are not tests.
bench-faults: setup  ## kill -9 of the Rasa server or the inbox writer while 30 customers write, 20 times
	$(ENV) .venv/bin/python bench/faults.py --model "$$(scripts/train-if-needed)" $(BENCH_ARGS)

bench-soak: setup  ## 10 minutes at 20 webhooks/s from 500 customers: memory, ack and e2e p99, errors
	$(ENV) .venv/bin/python bench/soak.py --model "$$(scripts/train-if-needed)" $(BENCH_ARGS)

bench-campaign: setup  ## a 100,000-recipient campaign at 80/s and 1,000/s with status webhooks and a customer
	$(ENV) .venv/bin/python bench/campaign.py --model "$$(scripts/train-if-needed)" $(BENCH_ARGS)

lock: setup  ## re-lock every transitive dependency after changing requirements.txt
	(echo "# Full lock of every installed package (Python 3.10, linux x86_64). Regenerate: make lock"; \
	 .venv/bin/pip freeze --all --exclude pip --exclude setuptools --exclude wheel | sort -f) > constraints.txt

clean:  ## remove local state (databases, test caches); keeps .venv and models
	rm -rf var .rasa results
