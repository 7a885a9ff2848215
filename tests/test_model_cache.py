"""The machine's model cache (SHOP_MODEL_CACHE): a second clone with the same inputs takes
the project model from it instead of training; other inputs (data, the lock file) train.

scripts/train-if-needed runs in a copy of the project's inputs with a stand-in for `rasa`
that records each training, so nothing here trains a real model."""
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from scripts import evaluate_nlu

ROOT = Path(__file__).resolve().parents[1]
INPUTS = ["config.yml", "domain.yml", "data", "connectors/referred_product.py", "connectors/conversation_language.py",
          "rasa_plugins/intent_classifier.py", "rasa_plugins/tokenizer.py", "rasa_plugins/romanised_featurizer.py",
          "constraints.txt",
          "scripts/train-if-needed", "scripts/env.sh"]
FAKE_RASA = """#!/usr/bin/env bash
# rasa train --out DIR --fixed-model-name NAME: records the training, writes a "model"
set -eu
out= name=
while [ $# -gt 0 ]; do
  case "$1" in --out) out=$2; shift ;; --fixed-model-name) name=$2; shift ;; esac
  shift
done
echo "$name" >> "$TRAININGS"
mkdir -p "$out"
echo "model $name trained in $PWD" > "$out/$name.tar.gz"
"""


def clone(tmp_path: Path, name: str) -> Path:
    checkout = tmp_path / name
    for part in INPUTS:
        source, target = ROOT / part, checkout / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    rasa = checkout / ".venv" / "bin" / "rasa"
    rasa.parent.mkdir(parents=True)
    rasa.write_text(FAKE_RASA)
    rasa.chmod(0o755)
    return checkout


def train_if_needed(checkout: Path, env: Dict[str, str]) -> Path:
    done = subprocess.run(["bash", str(checkout / "scripts" / "train-if-needed")], env=env, cwd=checkout,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return checkout / done.stdout.strip()


def trainings(env: Dict[str, str]) -> List[str]:
    path = Path(env["TRAININGS"])
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def env(tmp_path: Path) -> Dict[str, str]:
    return {**os.environ, "SHOP_MODEL_CACHE": str(tmp_path / "cache"), "TRAININGS": str(tmp_path / "trainings")}


def test_a_second_clone_takes_the_model_from_the_cache(tmp_path: Path, env: Dict[str, str]) -> None:
    first = train_if_needed(clone(tmp_path, "first"), env)
    assert trainings(env) == [first.name[: -len(".tar.gz")]]
    assert (tmp_path / "cache" / first.name).read_text() == first.read_text()

    second_clone = clone(tmp_path, "second")
    second = train_if_needed(second_clone, env)
    assert len(trainings(env)) == 1, "the second clone trained again"
    assert second.name == first.name and second.parent == second_clone / "models"
    assert second.read_text() == first.read_text()  # the cached model itself


@pytest.mark.parametrize("change", ["data/nlu/cs/whatsapp.yml", "constraints.txt"])
def test_other_inputs_train_a_model_of_their_own(tmp_path: Path, env: Dict[str, str], change: str) -> None:
    first = train_if_needed(clone(tmp_path, "first"), env)
    changed = clone(tmp_path, "changed")
    with (changed / change).open("a") as file:
        file.write("\n# changed\n")
    second = train_if_needed(changed, env)
    assert second.name != first.name
    assert len(trainings(env)) == 2
    assert {p.name for p in (tmp_path / "cache").glob("shop-*.tar.gz")} == {first.name, second.name}


def test_an_empty_setting_keeps_models_in_the_checkout_only(tmp_path: Path, env: Dict[str, str]) -> None:
    env["SHOP_MODEL_CACHE"] = ""
    model = train_if_needed(clone(tmp_path, "first"), env)
    assert model.is_file() and not (tmp_path / "cache").exists()
    train_if_needed(clone(tmp_path, "second"), env)
    assert len(trainings(env)) == 2


def test_the_held_out_model_is_cached_in_the_machine_cache_by_lock_file_too(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHOP_MODEL_CACHE", str(tmp_path / "cache"))
    assert evaluate_nlu.parse_args([]).cache == tmp_path / "cache"
    monkeypatch.delenv("SHOP_MODEL_CACHE")
    assert evaluate_nlu.parse_args([]).cache == Path("var/test-models")

    config = ROOT / "config.yml"
    before = evaluate_nlu.fingerprint("nlu: []", config, None)
    monkeypatch.setattr(evaluate_nlu, "lock_file", lambda: "rasa==9.9.9\n")
    assert evaluate_nlu.fingerprint("nlu: []", config, None) != before
