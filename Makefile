# The two commands a newcomer needs: `make run` and `make test`. The rest are for trainers
# and operators. Every target creates the Python 3.10 environment first if needed.
SHELL := /bin/bash
ENV := . scripts/env.sh &&

.PHONY: run test setup train validate test-nlu test-stories review bench lock clean

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

lock: setup  ## re-lock every transitive dependency after changing requirements.txt
	(echo "# Full lock of every installed package (Python 3.10, linux x86_64). Regenerate: make lock"; \
	 .venv/bin/pip freeze --all --exclude pip --exclude setuptools --exclude wheel | sort -f) > constraints.txt

clean:  ## remove local state (databases, test caches); keeps .venv and models
	rm -rf var .rasa results
