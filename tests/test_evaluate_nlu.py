"""scripts/evaluate_nlu.py: report reading and thresholds, the split, the model cache.

Fast: no training of the real data. One test runs the whole script end to end on a tiny
dataset with a tiny config (no DIET), twice: the second run reuses the cached model
(about 30 s together).
"""
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any, Dict

import pytest
from rasa.shared.nlu.training_data.loading import load_data

from scripts import evaluate_nlu
from tests.conftest import ROOT

PYTHON = ROOT / ".venv" / "bin" / "python"
SCRIPT = ROOT / "scripts" / "evaluate_nlu.py"


def row(f1: float, support: int, **confused: int) -> Dict[str, Any]:
    return {"precision": f1, "recall": f1, "f1-score": f1, "support": support, "confused_with": dict(confused)}


def summary(value: float) -> Dict[str, Any]:
    return {"precision": value, "recall": value, "f1-score": value, "support": 100}


INTENT_REPORT = {
    "greet": row(1.0, 20),
    "product_price": row(0.8, 10, product_info=2, product_availability=1),
    "product_info": row(0.9, 12, product_price=1),
    "stop": row(1.0, 8),
    "accuracy": 0.96,
    "macro avg": summary(0.9),
    "weighted avg": summary(0.95),
}
RESPONSE_REPORT = {
    "faq/shipping_time": row(0.85, 6, **{"faq/shipping_cost": 1}),
    "faq/shipping_cost": row(1.0, 6),
    "accuracy": 0.92,
    "macro avg": summary(0.9),
    "weighted avg": summary(0.92),
}
# Every extractor's report has every entity label of the test data (same targets):
# DIET never predicts order_id, the regex extractor only predicts order_id.
DIET_REPORT = {
    "product": row(0.9, 40), "category": row(1.0, 20), "size": row(0.8, 10),
    "color": row(0.95, 10), "order_id": row(0.0, 10),
    "micro avg": summary(0.9), "macro avg": summary(0.8), "weighted avg": summary(0.85),
}
REGEX_REPORT = {
    "product": row(0.0, 40), "category": row(0.0, 20), "size": row(0.0, 10),
    "color": row(0.0, 10), "order_id": row(1.0, 10),
    "micro avg": summary(0.2), "macro avg": summary(0.2), "weighted avg": summary(0.1),
}
COMBINED = (0.9 * 40 + 1.0 * 20 + 0.8 * 10 + 0.95 * 10 + 1.0 * 10) / 90  # 0.9278


def write_reports(out: Path, **reports: Dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    defaults = {
        "intent_report": INTENT_REPORT,
        "response_selection_report": RESPONSE_REPORT,
        "DIETClassifier_report": DIET_REPORT,
        "RegexEntityExtractor_report": REGEX_REPORT,
    }
    defaults.update(reports)
    for name, report in defaults.items():
        if report is not None:
            (out / f"{name}.json").write_text(json.dumps(report))
    return out


# --------------------------------------------------------------------- reading reports


def test_metrics_combine_each_entity_from_its_extractor(tmp_path: Path) -> None:
    metrics = evaluate_nlu.read_metrics(write_reports(tmp_path))
    assert metrics.intent_accuracy == 0.96
    assert metrics.response_accuracy == 0.92
    assert metrics.entity_f1 == pytest.approx(COMBINED)
    scores = {s.entity: (s.extractor, s.f1, s.support) for s in metrics.entities}
    assert scores == {
        "product": ("DIETClassifier", 0.9, 40),
        "category": ("DIETClassifier", 1.0, 20),
        "size": ("DIETClassifier", 0.8, 10),
        "color": ("DIETClassifier", 0.95, 10),
        "order_id": ("RegexEntityExtractor", 1.0, 10),
    }
    # Worst first, with whom they were confused; perfect intents are not listed.
    assert [(c.label, c.confused_with) for c in metrics.worst_intents] == [
        ("product_price", {"product_info": 2, "product_availability": 1}),
        ("product_info", {"product_price": 1}),
    ]
    assert [c.label for c in metrics.worst_responses] == ["faq/shipping_time"]


def test_all_thresholds_met(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = write_reports(tmp_path / "out")
    assert evaluate_nlu.main(["--check-only", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"intent accuracy\s+0\.960\s+0\.950\s+PASS", printed)
    assert re.search(r"response selection accuracy \(faq\)\s+0\.920\s+0\.900\s+PASS", printed)
    assert re.search(r"entity F1 \(5 entities, support-weighted\)\s+0\.928\s+0\.900\s+PASS", printed)
    assert re.search(r"order_id \(RegexEntityExtractor\)\s+1\.000\s+support 10", printed)
    assert re.search(r"product_price\s+0\.800\s+10\s+product_info \(2\), product_availability \(1\)", printed)
    assert "PASS: every threshold is met" in printed


@pytest.mark.parametrize(
    "args, failing",
    [
        (["--min-intent-accuracy", "0.97"], "intent accuracy"),
        (["--min-response-accuracy", "0.95"], "response selection accuracy"),
        (["--min-entity-f1", "0.93"], "entity F1"),
    ],
)
def test_each_threshold_fails_on_its_own(tmp_path: Path, capsys: pytest.CaptureFixture, args, failing) -> None:
    out = write_reports(tmp_path / "out")
    assert evaluate_nlu.main(["--check-only", "--out", str(out), *args]) == 1
    printed = capsys.readouterr().out
    fail_lines = [line for line in printed.splitlines() if line.endswith("FAIL")]
    assert len(fail_lines) == 1 and fail_lines[0].startswith(failing)
    assert f"FAIL: {failing}" in printed


def test_entity_without_responsible_report_scores_zero(tmp_path: Path) -> None:
    # The regex extractor predicted nothing (so Rasa wrote no report for it) while the
    # test data has order ids: order_id counts as 0, it must not silently disappear.
    out = write_reports(tmp_path, RegexEntityExtractor_report=None)
    metrics = evaluate_nlu.read_metrics(out)
    order_id = next(s for s in metrics.entities if s.entity == "order_id")
    assert (order_id.f1, order_id.support, order_id.note) == (0.0, 10, "RegexEntityExtractor: no report")
    assert metrics.entity_f1 == pytest.approx((COMBINED * 90 - 10) / 90)
    results = evaluate_nlu.checks(metrics, 0.95, 0.9, 0.9)
    assert [c.result for c in results] == ["PASS", "PASS", "FAIL"]


def test_entity_missing_from_test_data_is_left_out(tmp_path: Path) -> None:
    diet = {k: v for k, v in DIET_REPORT.items() if k != "color"}
    regex = {k: v for k, v in REGEX_REPORT.items() if k != "color"}
    metrics = evaluate_nlu.read_metrics(write_reports(tmp_path, DIETClassifier_report=diet,
                                                     RegexEntityExtractor_report=regex))
    color = next(s for s in metrics.entities if s.entity == "color")
    assert (color.f1, color.support, color.note) == (None, 0, "no test examples")
    assert metrics.entity_f1 == pytest.approx((COMBINED * 90 - 0.95 * 10) / 80)


def test_missing_metrics_fail_unless_switched_off(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = write_reports(tmp_path / "out", response_selection_report=None,
                        DIETClassifier_report=None, RegexEntityExtractor_report=None)
    assert evaluate_nlu.main(["--check-only", "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    assert re.search(r"response selection accuracy \(faq\)\s+n/a\s+0\.900\s+FAIL", printed)
    assert re.search(r"entity F1 .*\s+n/a\s+0\.900\s+FAIL", printed)
    args = ["--check-only", "--out", str(out), "--min-response-accuracy", "0", "--min-entity-f1", "0"]
    assert evaluate_nlu.main(args) == 0
    assert re.search(r"entity F1 .*\s+n/a\s+0\.000\s+SKIP", capsys.readouterr().out)


def test_entity_responsibility_can_be_changed(tmp_path: Path) -> None:
    out = write_reports(tmp_path / "out")
    args = ["--check-only", "--out", str(out), "--entity", "order_id=DIETClassifier",
            "--entity", "product=DIETClassifier"]
    assert evaluate_nlu.main(args) == 1  # order_id by DIET: (0.9*40 + 0*10) / 50 = 0.72
    metrics = evaluate_nlu.read_metrics(out, {"order_id": "DIETClassifier", "product": "DIETClassifier"})
    assert metrics.entity_f1 == pytest.approx(0.72)


def test_check_only_without_reports_is_a_usage_error(tmp_path: Path) -> None:
    assert evaluate_nlu.main(["--check-only", "--out", str(tmp_path)]) == 2


# --------------------------------------------------------------------- split


def write_dataset(root: Path, examples_per_intent: int = 8) -> Path:
    data = root / "data"
    (data / "nlu").mkdir(parents=True)
    (data / "responses").mkdir()

    def block(texts):
        return "".join(f"      - {t}\n" for t in texts)

    greet = [f"hello there {i}" for i in range(examples_per_intent)]
    price = [f"how much is the [{c}](color) shirt number {i}" for i, c in
             enumerate(["red", "blue", "green", "black", "white", "grey", "pink", "navy"][:examples_per_intent])]
    order = [f"where is order [LT-1{i:04d}](order_id)" for i in range(examples_per_intent)]
    ship = [f"how long does shipping take to city {i}" for i in range(5)]
    pay = [f"can i pay with card type {i}" for i in range(3)]
    (data / "nlu" / "main.yml").write_text(
        'version: "3.1"\nnlu:\n'
        f"  - intent: greet\n    examples: |\n{block(greet)}"
        f"  - intent: product_price\n    examples: |\n{block(price)}"
        f"  - intent: order_status\n    examples: |\n{block(order)}"
        "  - regex: order_id\n    examples: |\n      - LT-\\d{5}\n"
    )
    (data / "nlu" / "faq.yml").write_text(
        'version: "3.1"\nnlu:\n'
        f"  - intent: faq/shipping_time\n    examples: |\n{block(ship)}"
        f"  - intent: faq/payment_methods\n    examples: |\n{block(pay)}"
    )
    (data / "responses" / "faq.yml").write_text(
        'version: "3.1"\nresponses:\n'
        "  utter_faq/shipping_time:\n    - text: 1-3 days\n"
        "  utter_faq/payment_methods:\n    - text: card or paypal\n"
    )
    (data / "rules.yml").write_text(
        'version: "3.1"\nrules:\n  - rule: greet\n    steps:\n      - intent: greet\n      - action: utter_greet\n'
    )
    return data


def split_signature(training_data) -> list:
    return sorted((m.get_full_intent(), m.get("text")) for m in training_data.nlu_examples)


def test_split_is_deterministic_and_keeps_every_class_in_train(tmp_path: Path) -> None:
    data = write_dataset(tmp_path)
    full = evaluate_nlu.load_nlu_data(data)
    assert len(full.nlu_examples) == 8 * 3 + 5 + 3  # the rules file is not NLU data
    train_a, test_a = evaluate_nlu.split(full, 0.8, 42)
    train_b, test_b = evaluate_nlu.split(evaluate_nlu.load_nlu_data(data), 0.8, 42)
    assert split_signature(train_a) == split_signature(train_b)
    assert split_signature(test_a) == split_signature(test_b)
    assert evaluate_nlu.to_yaml(train_a) == evaluate_nlu.to_yaml(train_b)
    assert len(train_a.nlu_examples) + len(test_a.nlu_examples) == len(full.nlu_examples)
    assert not set(split_signature(train_a)) & set(split_signature(test_a))

    classes = {m.get_full_intent() for m in full.nlu_examples}
    assert {m.get_full_intent() for m in train_a.nlu_examples} == classes
    assert {m.get_full_intent() for m in test_a.nlu_examples} == classes
    # The faq examples of each part come with the answers they need.
    assert set(train_a.responses) == {"utter_faq/shipping_time", "utter_faq/payment_methods"}
    assert set(test_a.responses) == {"utter_faq/shipping_time", "utter_faq/payment_methods"}

    others = [evaluate_nlu.split(evaluate_nlu.load_nlu_data(data), 0.8, seed)[1] for seed in (1, 2, 3)]
    assert any(split_signature(o) != split_signature(test_a) for o in others)


def test_written_split_loads_back_with_entities_and_responses(tmp_path: Path) -> None:
    data = write_dataset(tmp_path)
    train, test = evaluate_nlu.split(evaluate_nlu.load_nlu_data(data), 0.75, 7)
    train_path, test_path, train_yaml = evaluate_nlu.write_split(train, test, tmp_path / "out")
    assert train_path.read_text() == train_yaml
    loaded = load_data(str(train_path))
    assert split_signature(loaded) == split_signature(train)
    assert loaded.regex_features and loaded.responses
    assert any(m.get("entities") for m in load_data(str(test_path)).nlu_examples)


def test_split_is_the_same_across_processes(tmp_path: Path) -> None:
    """Python's hash randomisation must not change the split (nor the cache key)."""
    data = write_dataset(tmp_path)
    (tmp_path / "config.yml").write_text("language: en\npipeline: []\n")
    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"out{hash_seed}"
        result = subprocess.run(
            [str(PYTHON), str(SCRIPT), "--split-only", "--data", str(data), "--config", str(tmp_path / "config.yml"),
             "--domain", str(tmp_path / "none.yml"), "--out", str(out)],
            cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        assert result.returncode == 0, result.stderr
        key = re.search(r"fingerprint (\w+)", result.stderr).group(1)
        outputs.append(((out / "training_data.yml").read_text(), (out / "test_data.yml").read_text(), key))
    assert outputs[0] == outputs[1]


# --------------------------------------------------------------------- cache


def test_fingerprint_follows_what_the_model_is_trained_from(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("language: en\npipeline: []\n")
    domain = tmp_path / "domain.yml"
    domain.write_text('version: "3.1"\nintents:\n  - greet\nresponses:\n  utter_greet:\n    - text: hi\n')
    base = evaluate_nlu.fingerprint("nlu: []", config, domain)
    assert base == evaluate_nlu.fingerprint("nlu: []", config, domain)
    assert base != evaluate_nlu.fingerprint("nlu: [x]", config, domain)
    # A change of the dialogue part of the domain does not retrain the NLU ...
    domain.write_text('version: "3.1"\nintents:\n  - greet\nresponses:\n  utter_greet:\n    - text: hello\n')
    assert base == evaluate_nlu.fingerprint("nlu: []", config, domain)
    # ... a retrieval answer in the domain does (Rasa merges those into the NLU data).
    domain.write_text('version: "3.1"\nintents:\n  - greet\nresponses:\n  utter_faq/x:\n    - text: y\n')
    assert base != evaluate_nlu.fingerprint("nlu: []", config, domain)
    config.write_text("language: en\npipeline: []\n# changed\n")
    assert evaluate_nlu.fingerprint("nlu: []", config, None) != evaluate_nlu.fingerprint("nlu: []", config, domain)


def test_fingerprint_covers_custom_component_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "evalnlu_custom_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "component.py").write_text("class Extractor:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "config.yml"
    config.write_text("language: en\npipeline:\n  - name: WhitespaceTokenizer\n"
                      "  - name: evalnlu_custom_pkg.component.Extractor\n")
    before = evaluate_nlu.fingerprint("nlu: []", config, None)
    assert before == evaluate_nlu.fingerprint("nlu: []", config, None)
    (package / "component.py").write_text("class Extractor:\n    changed = True\n")
    assert evaluate_nlu.fingerprint("nlu: []", config, None) != before


def test_cached_model_is_reused_and_old_ones_pruned(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    for i, name in enumerate(["a", "b", "c", "d"]):
        path = cache / f"nlu-eval-{name}.tar.gz"
        path.write_text(name)
        os.utime(path, (time.time() - 100 + i, time.time() - 100 + i))
    other = cache / "e2e-keep.tar.gz"
    other.write_text("not ours")
    model, cached = evaluate_nlu.train_or_reuse(tmp_path / "unused.yml", tmp_path / "unused", None, cache, "a")
    assert (model, cached) == (cache / "nlu-eval-a.tar.gz", True)
    evaluate_nlu.prune_cache(cache, keep=3)
    assert sorted(p.name for p in cache.iterdir()) == [
        "e2e-keep.tar.gz", "nlu-eval-a.tar.gz", "nlu-eval-c.tar.gz", "nlu-eval-d.tar.gz",
    ]


# --------------------------------------------------------------------- whole script, tiny model

# No DIET: TensorFlow's graph tracing alone takes half a minute per DIET model. Sklearn
# classifiers and a minimal ResponseSelector give every report in seconds.
TINY_CONFIG = """\
recipe: default.v1
assistant_id: evaluate-nlu-test
language: en
pipeline:
  - name: WhitespaceTokenizer
  - name: RegexFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 2
    max_ngram: 3
  - name: LogisticRegressionClassifier
  - name: CRFEntityExtractor
  - name: RegexEntityExtractor
    use_regexes: true
  - name: ResponseSelector
    retrieval_intent: faq
    epochs: 5
    hidden_layers_sizes: {text: [], label: []}
    embedding_dimension: 10
  - name: FallbackClassifier
    threshold: 0.3
policies: []
"""


def test_whole_script_on_a_tiny_dataset(tmp_path: Path) -> None:
    data = write_dataset(tmp_path, examples_per_intent=8)
    config = tmp_path / "config.yml"
    config.write_text(TINY_CONFIG)
    out, cache = tmp_path / "results", tmp_path / "cache"
    command = [
        str(PYTHON), str(SCRIPT), "--data", str(data), "--config", str(config), "--domain", str(tmp_path / "none.yml"),
        "--out", str(out), "--cache", str(cache), "--min-intent-accuracy", "0", "--min-response-accuracy", "0",
        "--entity", "color=CRFEntityExtractor", "--entity", "order_id=RegexEntityExtractor",
        "--entity", "product=CRFEntityExtractor",
    ]
    env = {**os.environ, "RASA_CACHE_DIRECTORY": str(tmp_path / "rasa-cache")}
    first = subprocess.run([*command, "--min-entity-f1", "0"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=240, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "trained in" in first.stderr
    assert len(list(cache.glob("nlu-eval-*.tar.gz"))) == 1
    for report in ("intent_report.json", "response_selection_report.json", "RegexEntityExtractor_report.json",
                   "CRFEntityExtractor_report.json", "training_data.yml", "test_data.yml"):
        assert (out / report).is_file(), report
    # stdout is the table only
    assert first.stdout.startswith("metric ")
    assert re.search(r"intent accuracy\s+\d\.\d{3}\s+0\.000\s+SKIP", first.stdout)
    assert re.search(r"order_id \(RegexEntityExtractor\)\s+1\.000\s+support [1-9]", first.stdout)
    assert re.search(r"product \(CRFEntityExtractor\)\s+n/a\s+support 0; no test examples", first.stdout)

    # Unchanged data: the cached model is used. A demanding threshold fails the run.
    second = subprocess.run([*command, "--min-entity-f1", "1.01"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=240, env=env)
    assert second.returncode == 1, second.stdout + second.stderr
    assert "(cached)" in second.stderr
    assert re.search(r"entity F1 \(3 entities, support-weighted\)\s+\d\.\d{3}\s+1\.010\s+FAIL", second.stdout)
