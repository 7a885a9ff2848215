"""scripts/evaluate_nlu.py: languages of the examples, the honest split (near-duplicates
moved into training), report reading and per-language thresholds, the model cache.

Fast: no training of the real data. Two tests run the whole script end to end on tiny
datasets with a tiny config (no DIET): English only twice (the second run reuses the
cached model), and English with German once (about a minute together).
"""
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Optional

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


def write_reports(out: Path, **reports: Optional[Dict[str, Any]]) -> Path:
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
    assert metrics.product == evaluate_nlu.EntityScore("product", "DIETClassifier", 0.9, 40)
    assert metrics.test_examples == 20 + 10 + 12 + 8  # the intent labels' support


def test_all_thresholds_met(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = write_reports(tmp_path / "out")
    assert evaluate_nlu.main(["--check-only", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # Reports directly in --out (the layout from before the languages) are English.
    assert printed.startswith("language  metric ")
    assert re.search(r"\nen\s+test examples\s+50\s+gated\n", printed)
    assert re.search(r"\nen\s+intent accuracy\s+0\.960\s+0\.950\s+PASS", printed)
    assert re.search(r"\nen\s+response selection accuracy \(faq\)\s+0\.920\s+0\.900\s+PASS", printed)
    assert re.search(r"\nen\s+entity F1 \(5 entities, support-weighted\)\s+0\.928\s+0\.850\s+PASS", printed)
    assert re.search(r"\nen\s+product \(DIETClassifier\)\s+0\.900\s+0\.850\s+PASS\s+support 40", printed)
    assert re.search(r"\nen\s+order_id \(RegexEntityExtractor\)\s+1\.000\s+support 10", printed)
    assert "most confused intents (en)" in printed
    assert re.search(r"product_price\s+0\.800\s+10\s+product_info \(2\), product_availability \(1\)", printed)
    assert "PASS: every threshold is met (gated: en)" in printed


@pytest.mark.parametrize(
    "args, failing",
    [
        (["--min-intent-accuracy-en", "0.97"], "intent accuracy"),
        (["--min-response-accuracy", "0.95"], "response selection accuracy"),
        (["--min-entity-f1", "0.93"], "entity F1"),
        (["--min-product-f1", "0.91"], "product"),
    ],
)
def test_each_threshold_fails_on_its_own(tmp_path: Path, capsys: pytest.CaptureFixture, args, failing) -> None:
    out = write_reports(tmp_path / "out")
    assert evaluate_nlu.main(["--check-only", "--out", str(out), *args]) == 1
    printed = capsys.readouterr().out
    fail_lines = [line for line in printed.splitlines() if re.search(r"\sFAIL\b", line)]
    assert len(fail_lines) == 1 and re.match(rf"en\s+{re.escape(failing)}", fail_lines[0])
    assert f"FAIL: en {failing}" in printed


def test_english_is_held_to_its_own_intent_threshold(tmp_path: Path) -> None:
    out = write_reports(tmp_path / "out")  # intent accuracy 0.96
    assert evaluate_nlu.main(["--check-only", "--out", str(out), "--min-intent-accuracy", "0.99"]) == 0
    assert evaluate_nlu.main(["--check-only", "--out", str(out), "--min-intent-accuracy-en", "0.96"]) == 0
    assert evaluate_nlu.main(["--check-only", "--out", str(out), "--min-intent-accuracy-en", "0.961"]) == 1


def test_entity_without_responsible_report_scores_zero(tmp_path: Path) -> None:
    # The regex extractor predicted nothing (so Rasa wrote no report for it) while the
    # test data has order ids: order_id counts as 0, it must not silently disappear.
    out = write_reports(tmp_path, RegexEntityExtractor_report=None)
    metrics = evaluate_nlu.read_metrics(out)
    order_id = next(s for s in metrics.entities if s.entity == "order_id")
    assert (order_id.f1, order_id.support, order_id.note) == (0.0, 10, "RegexEntityExtractor: no report")
    assert metrics.entity_f1 == pytest.approx((COMBINED * 90 - 10) / 90)
    results = evaluate_nlu.checks(metrics, evaluate_nlu.Thresholds())
    assert [c.result for c in results] == ["PASS", "PASS", "FAIL", "PASS"]


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
    assert re.search(r"entity F1 .*\s+n/a\s+0\.850\s+FAIL", printed)
    assert re.search(r"product \(DIETClassifier\)\s+n/a\s+0\.850\s+FAIL\s+support 0; no test examples", printed)
    args = ["--check-only", "--out", str(out), "--min-response-accuracy", "0", "--min-entity-f1", "0",
            "--min-product-f1", "0"]
    assert evaluate_nlu.main(args) == 0
    printed = capsys.readouterr().out
    assert re.search(r"entity F1 .*\s+n/a\s+0\.000\s+SKIP", printed)
    assert re.search(r"product \(DIETClassifier\)\s+n/a\s+0\.000\s+SKIP", printed)


def test_entity_responsibility_can_be_changed(tmp_path: Path) -> None:
    out = write_reports(tmp_path / "out")
    args = ["--check-only", "--out", str(out), "--entity", "order_id=DIETClassifier",
            "--entity", "product=DIETClassifier"]
    assert evaluate_nlu.main(args) == 1  # order_id by DIET: (0.9*40 + 0*10) / 50 = 0.72
    metrics = evaluate_nlu.read_metrics(out, {"order_id": "DIETClassifier", "product": "DIETClassifier"})
    assert metrics.entity_f1 == pytest.approx(0.72)


def test_check_only_without_reports_is_a_usage_error(tmp_path: Path) -> None:
    assert evaluate_nlu.main(["--check-only", "--out", str(tmp_path)]) == 2


# --------------------------------------------------------------------- per language


def scaled(report: Dict[str, Any], factor: float = 1.0, value: Optional[float] = None) -> Dict[str, Any]:
    """`report` with every support times `factor` (at least 1) and, given `value`, that
    accuracy and every f1-score."""
    scaled_report: Dict[str, Any] = {}
    for label, row_ in report.items():
        if isinstance(row_, dict):
            row_ = {**row_, "support": max(1, round(row_["support"] * factor))}
            if value is not None:
                row_["f1-score"] = value
        elif value is not None:
            row_ = value
        scaled_report[label] = row_
    return scaled_report


def write_language_reports(out: Path, lang: str, intent: float = 0.96, response: float = 0.92,
                           product: float = 0.9, factor: float = 1.0) -> None:
    """A language's reports in <out>/<lang>/: 50 test examples times `factor`."""
    diet = {**DIET_REPORT, "product": row(product, 40)}
    write_reports(out / lang, intent_report=scaled(INTENT_REPORT, factor, intent),
                  response_selection_report=scaled(RESPONSE_REPORT, factor, response),
                  DIETClassifier_report=scaled(diet, factor), RegexEntityExtractor_report=scaled(REGEX_REPORT, factor))


def check_languages(out: Path, capsys: pytest.CaptureFixture, *args: str) -> tuple:
    code = evaluate_nlu.main(["--check-only", "--out", str(out), *args])
    return code, capsys.readouterr().out


def test_each_language_is_checked_on_its_own(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    write_language_reports(out, "en")
    write_language_reports(out, "de", intent=0.92, response=0.95, product=0.87, factor=0.5)
    metrics = evaluate_nlu.read_language_metrics(out)
    assert list(metrics) == ["en", "de"]  # English first
    assert (metrics["de"].intent_accuracy, metrics["de"].test_examples) == (0.92, 25)
    assert metrics["de"].product == evaluate_nlu.EntityScore("product", "DIETClassifier", 0.87, 20)

    # German is held to 0.90 (English to 0.95): 0.92 passes.
    code, printed = check_languages(out, capsys)
    assert code == 0, printed
    assert printed.startswith("language  metric ")
    assert re.search(r"\nde\s+test examples\s+25\s+gated\n", printed)
    assert re.search(r"\nde\s+intent accuracy\s+0\.920\s+0\.900\s+PASS", printed)
    assert re.search(r"\nde\s+response selection accuracy \(faq\)\s+0\.950\s+0\.900\s+PASS", printed)
    assert re.search(r"\nde\s+entity F1 \(5 entities, support-weighted\)\s+0\.\d{3}\s+0\.850\s+PASS", printed)
    assert re.search(r"\nde\s+product \(DIETClassifier\)\s+0\.870\s+0\.850\s+PASS\s+support 20", printed)
    assert re.search(r"\nen\s+intent accuracy\s+0\.960\s+0\.950\s+PASS", printed)
    # one row per language and metric; en's rows come first
    rows = [line.split()[0] for line in printed.split("\n\n")[0].splitlines()[1:]]
    assert rows == ["en"] * 9 + ["de"] * 9  # test examples, 3 metrics, 5 entities (product gated)
    assert "most confused intents (en)" in printed and "most confused intents (de)" in printed
    assert "most confused faq answers (de)" in printed
    assert "PASS: every threshold is met (gated: en, de)" in printed

    # The thresholds are minimums: a value equal to its threshold passes.
    write_language_reports(out, "de", intent=0.90, response=0.90, product=0.85, factor=0.5)
    code, printed = check_languages(out, capsys)
    assert code == 0, printed
    assert evaluate_nlu.main(["--check-only", "--out", str(out), "--min-intent-accuracy", "0.91"]) == 1


@pytest.mark.parametrize(
    "reports, failing",
    [
        ({"intent": 0.89}, "de intent accuracy"),
        ({"response": 0.89}, "de response selection accuracy (faq)"),
        ({"product": 0.84}, "de product entity F1 (DIETClassifier)"),
    ],
)
def test_a_language_below_a_threshold_fails(tmp_path: Path, capsys: pytest.CaptureFixture, reports, failing) -> None:
    out = tmp_path / "out"
    write_language_reports(out, "en")
    write_language_reports(out, "de", **reports)
    code, printed = check_languages(out, capsys)
    assert code == 1
    fail_lines = [line for line in printed.splitlines() if re.search(r"\sFAIL\b", line)]
    assert len(fail_lines) == 1 and fail_lines[0].startswith("de "), printed
    assert printed.rstrip().endswith(f"FAIL: {failing}")


def test_entity_f1_is_gated_per_language(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    write_language_reports(out, "en")
    write_reports(out / "ru", intent_report=INTENT_REPORT, response_selection_report=RESPONSE_REPORT,
                  DIETClassifier_report={**DIET_REPORT, "category": row(0.5, 20)})  # (0.9*40+0.5*20+...)/90 < 0.85
    code, printed = check_languages(out, capsys)
    assert code == 1
    assert re.search(r"\nru\s+entity F1 \(5 entities, support-weighted\)\s+0\.8\d\d\s+0\.850\s+FAIL", printed)
    assert re.search(r"\nen\s+entity F1 \(5 entities, support-weighted\)\s+0\.928\s+0\.850\s+PASS", printed)
    assert printed.rstrip().endswith("FAIL: ru entity F1 (5 entities, support-weighted)")


def test_a_language_with_few_test_examples_is_reported_not_gated(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    write_language_reports(out, "en")
    write_language_reports(out, "ka", intent=0.5, response=0.5, product=0.5, factor=0.3)  # 15 test examples
    code, printed = check_languages(out, capsys)
    assert code == 0, printed
    assert re.search(r"\nka\s+test examples\s+15\s+fewer than 20 test examples: reported, not gated", printed)
    assert re.search(r"\nka\s+intent accuracy\s+0\.500\s+0\.900\s+low \(not gated\)", printed)
    assert re.search(r"\nka\s+product \(DIETClassifier\)\s+0\.500\s+0\.850\s+low \(not gated\)", printed)
    assert "most confused intents (ka)" in printed
    assert "PASS: every threshold is met (gated: en; not gated: ka)" in printed

    # With a lower minimum Georgian is gated, and fails.
    code, printed = check_languages(out, capsys, "--min-test-examples", "15")
    assert code == 1
    assert re.search(r"\nka\s+intent accuracy\s+0\.500\s+0\.900\s+FAIL", printed)

    # A check that nothing was gated passes nothing.
    code, printed = check_languages(out, capsys, "--min-test-examples", "1000")
    assert code == 1
    assert "FAIL: no language has enough test examples to be gated" in printed


def test_stale_top_level_reports_are_not_read_next_to_language_folders(tmp_path: Path) -> None:
    out = write_reports(tmp_path / "out", intent_report=scaled(INTENT_REPORT, value=0.1))
    write_language_reports(out, "en")
    assert list(evaluate_nlu.report_folders(out)) == ["en"]
    assert evaluate_nlu.read_language_metrics(out)["en"].intent_accuracy == 0.96
    # A run clears the reports of earlier runs, in <out> and its language folders.
    (out / "en" / "intent_errors.json").write_text("[]")
    (out / "notes").mkdir()
    (out / "notes" / "mine_report.json").write_text("{}")
    evaluate_nlu.clear_reports(out)
    assert evaluate_nlu.report_folders(out) == {}
    assert not list((out / "en").iterdir())
    assert (out / "notes" / "mine_report.json").is_file()  # not a language folder


# --------------------------------------------------------------------- split


GREET = ["hello there", "hi", "hey you", "good morning", "good evening", "hiya", "howdy", "greetings friend"]
COLORS = ["red", "blue", "green", "black", "white", "grey", "pink", "navy"]
ORDER = ["where is order", "status of order", "track my order", "any news on order", "has it shipped, order",
         "where is my parcel", "when does it arrive, order", "update on order"]
SHIP = ["how long does shipping take", "delivery time to berlin", "when will my parcel arrive in paris",
        "how many days is shipping to london", "how fast do you deliver"]
PAY = ["can i pay with card", "do you take paypal", "which payment options are there"]
# German: a smaller part, with products
GERMAN = {
    "greet": ["hallo zusammen", "guten morgen", "servus", "grüß gott", "moin moin", "guten abend"],
    "product_price": [f"was kostet der [{c}](color) [{p}](product)" for c, p in
                      [("rote", "pullover"), ("blaue", "hoodie"), ("grüne", "schal"), ("schwarze", "gürtel"),
                       ("weiße", "hut"), ("graue", "mantel")]],
    "order_status": [f"{w} [LT-2{i:04d}](order_id)" for i, w in
                     enumerate(["wo ist bestellung", "status der bestellung", "wann kommt bestellung",
                                "gibt es neues zu", "sendungsverfolgung für", "ist schon unterwegs:"])],
    "faq/shipping_time": ["wie lange dauert der versand", "lieferzeit nach wien", "wann kommt mein paket an"],
    "faq/payment_methods": ["kann ich mit karte zahlen", "nehmt ihr paypal"],
}


def nlu_file(intents: Dict[str, list], extra: str = "") -> str:
    text = 'version: "3.1"\nnlu:\n'
    for intent, examples in intents.items():
        text += f"  - intent: {intent}\n    examples: |\n" + "".join(f"      - {e}\n" for e in examples)
    return text + extra


def write_dataset(root: Path, examples_per_intent: int = 8, german: bool = False) -> Path:
    """English NLU files in data/nlu (texts distinct also after normalisation), faq
    answers in data/responses, a rules file; with `german` also data/nlu/de/nlu.yml."""
    data = root / "data"
    (data / "nlu").mkdir(parents=True)
    (data / "responses").mkdir()
    n = examples_per_intent
    price = [f"how much is the [{c}](color) shirt" for c in COLORS[:n]]
    order = [f"{w} [LT-1{i:04d}](order_id)" for i, w in enumerate(ORDER[:n])]
    (data / "nlu" / "main.yml").write_text(nlu_file(
        {"greet": GREET[:n], "product_price": price, "order_status": order},
        "  - regex: order_id\n    examples: |\n      - LT-\\d{5}\n",
    ))
    (data / "nlu" / "faq.yml").write_text(nlu_file({"faq/shipping_time": SHIP, "faq/payment_methods": PAY}))
    (data / "responses" / "faq.yml").write_text(
        'version: "3.1"\nresponses:\n'
        "  utter_faq/shipping_time:\n    - text: 1-3 days\n"
        "  utter_faq/payment_methods:\n    - text: card or paypal\n"
    )
    (data / "rules.yml").write_text(
        'version: "3.1"\nrules:\n  - rule: greet\n    steps:\n      - intent: greet\n      - action: utter_greet\n'
    )
    if german:
        (data / "nlu" / "de").mkdir()
        (data / "nlu" / "de" / "nlu.yml").write_text(nlu_file(GERMAN))
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


# --------------------------------------------------------------------- languages, honest split


def write_bilingual(root: Path) -> Path:
    """data/nlu/x.yml (English) and data/nlu/de/y.yml (German); "ok" is in both files, and
    German "Hello there!" is a near-duplicate of English "hello there"."""
    data = root / "data"
    (data / "nlu" / "de").mkdir(parents=True)
    (data / "nlu" / "x.yml").write_text(nlu_file({
        "greet": ["hello there", "good morning", "hi"],
        "goodbye": ["bye", "see you later", "good night"],
        "thanks": ["thanks"],
        "affirm": ["ok", "yes please"],
    }))
    (data / "nlu" / "de" / "y.yml").write_text(nlu_file({
        "greet": ["Hello there!", "Guten Morgen", "hallo"],
        "goodbye": ["tschüss", "bis später"],
        "thanks": ["Thanks!!"],
        "affirm": ["ok", "ja, gerne"],
    }))
    return data


def test_language_of_a_file_is_its_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    language = evaluate_nlu.file_language
    assert language(data / "nlu" / "x.yml", data) == "en"
    assert language(data / "nlu" / "de" / "y.yml", data) == "de"
    assert language(data / "nlu" / "zh" / "more" / "z.yml", data) == "zh"
    assert language(data / "responses" / "faq.yml", data) == "en"
    assert language(data / "extra.yml", data) == "en"
    assert language(data / "nlu" / "ru" / "y.yml", data / "nlu") == "ru"  # --data data/nlu
    assert language(data / "nlu" / "pt-BR" / "y.yml", data) == "pt-BR"
    with pytest.raises(evaluate_nlu.EvaluationError, match="not one"):
        language(data / "nlu" / "Generated Stuff" / "y.yml", data)


def test_every_example_knows_its_language(tmp_path: Path) -> None:
    full, languages = evaluate_nlu.load_nlu_data_with_languages(write_bilingual(tmp_path))
    assert len(full.nlu_examples) == 9 + 8 - 1  # "ok" (affirm) is one example, in both languages
    assert languages[("hello there", "greet")] == ("en",)
    assert languages[("Hello there!", "greet")] == ("de",)
    assert languages[("tschüss", "goodbye")] == ("de",)
    assert languages[("ok", "affirm")] == ("en", "de")
    for message in full.nlu_examples:
        assert evaluate_nlu.example_languages(message, languages)
    # Each language's test part: its examples only; "ok" in both.
    parts = evaluate_nlu.language_test_parts(full, full, languages)
    assert list(parts) == ["en", "de"]
    assert {m.get("text") for m in parts["de"].nlu_examples} == {
        "Hello there!", "Guten Morgen", "hallo", "tschüss", "bis später", "Thanks!!", "ok", "ja, gerne"}
    assert len(parts["en"].nlu_examples) == 9
    # The merged data of English-only files: every example is English.
    english, only_en = evaluate_nlu.load_nlu_data_with_languages(write_dataset(tmp_path / "en"))
    assert set(only_en.values()) == {("en",)} and len(only_en) == len(english.nlu_examples)


@pytest.mark.parametrize(
    "a, b",
    [
        ("Hello, there!", "hello there"),
        ("hi 👋", "HI"),
        ("Größe M?", "grosse m"),
        ("café", "CAFE"),
        ("ёлка", "Елка"),
        ("order LT-10479", "order lt-00001"),
        ("多少钱？", "多少钱"),
        ("\uff28\uff29", "hi"),  # full-width letters (NFKD)
        ("děkuji", "dekuji"),
    ],
)
def test_near_duplicates_normalise_alike(a: str, b: str) -> None:
    assert evaluate_nlu.normalise(a) == evaluate_nlu.normalise(b)


def test_normalisation_keeps_what_tells_texts_apart() -> None:
    normalise = evaluate_nlu.normalise
    assert normalise("hello there") != normalise("hello where")
    assert normalise("👍") != normalise("👎")  # nothing left: compared as written
    assert normalise("👍 ") == normalise("👍")
    assert normalise("բարև") != normalise("բարի")
    assert normalise("ნახვამდის") == "ნახვამდის"


def by_text(training_data: Any, *texts: str) -> list:
    found = [m for m in training_data.nlu_examples if m.get("text") in texts]
    assert len(found) == len(texts)
    return found


def texts(training_data: Any) -> set:
    return {m.get("text") for m in training_data.nlu_examples}


def assert_honest(honest: evaluate_nlu.HonestSplit) -> None:
    train = {evaluate_nlu.normalise(m.get("text")) for m in honest.train.nlu_examples}
    assert not any(evaluate_nlu.normalise(m.get("text")) in train for m in honest.test.nlu_examples)


def test_near_duplicate_test_examples_move_into_training(tmp_path: Path) -> None:
    full, languages = evaluate_nlu.load_nlu_data_with_languages(write_bilingual(tmp_path))
    in_test = ("Hello there!", "hallo", "see you later", "bis später", "ja, gerne")
    test = evaluate_nlu.part_of(full, by_text(full, *in_test))
    train = evaluate_nlu.part_of(full, [m for m in full.nlu_examples if m.get("text") not in in_test])
    honest = evaluate_nlu.move_near_duplicates(full, train, test, languages)
    assert [m.get("text") for m in honest.moved] == ["Hello there!"]  # same as English "hello there"
    assert "Hello there!" in texts(honest.train)
    assert texts(honest.test) == {"hallo", "see you later", "bis später", "ja, gerne"}
    assert (honest.restored, honest.without_test) == ([], [])
    assert len(honest.train.nlu_examples) + len(honest.test.nlu_examples) == len(full.nlu_examples)
    assert_honest(honest)


def test_an_intent_keeps_test_examples_in_each_language(tmp_path: Path) -> None:
    full, languages = evaluate_nlu.load_nlu_data_with_languages(write_bilingual(tmp_path))
    # German greet's only test example is a near-duplicate: the English one joins it in
    # test (greet keeps training examples). German thanks' too, but English "thanks" is
    # the only training example of thanks: that one stays in train, with a warning.
    in_test = ("Hello there!", "Thanks!!", "bye", "ja, gerne")
    test = evaluate_nlu.part_of(full, by_text(full, *in_test))
    train = evaluate_nlu.part_of(full, [m for m in full.nlu_examples if m.get("text") not in in_test])
    honest = evaluate_nlu.move_near_duplicates(full, train, test, languages)
    assert texts(honest.test) == {"Hello there!", "hello there", "bye", "ja, gerne"}
    assert sorted(m.get("text") for m in honest.restored) == ["Hello there!", "hello there"]
    assert [m.get("text") for m in honest.moved] == ["Thanks!!"]
    assert honest.without_test == [("thanks", "de")]
    assert {m.get_full_intent() for m in honest.train.nlu_examples} == {"greet", "goodbye", "thanks", "affirm"}
    assert_honest(honest)


def test_split_of_bilingual_data_is_honest_and_complete(tmp_path: Path) -> None:
    data = write_dataset(tmp_path, german=True)
    (data / "nlu" / "de" / "dup.yml").write_text(nlu_file({"greet": ["Hello there!!", "Hi", "HOWDY"]}))
    full, languages = evaluate_nlu.load_nlu_data_with_languages(data)
    train, test = evaluate_nlu.split(full, 0.8, 42)
    honest = evaluate_nlu.move_near_duplicates(full, train, test, languages)
    assert_honest(honest)
    assert len(honest.train.nlu_examples) + len(honest.test.nlu_examples) == len(full.nlu_examples)
    groups = lambda part: {g for m in part.nlu_examples for g in evaluate_nlu._groups(m, languages)}  # noqa: E731
    assert groups(honest.test) == groups(test)
    assert {m.get_full_intent() for m in honest.train.nlu_examples} == {m.get_full_intent() for m in full.nlu_examples}
    # each part keeps the faq answers its examples need
    assert set(honest.test.responses) == {"utter_faq/shipping_time", "utter_faq/payment_methods"}
    parts = evaluate_nlu.language_test_parts(full, honest.test, languages)
    assert list(parts) == ["en", "de"]
    assert sum(len(p.nlu_examples) for p in parts.values()) == len(honest.test.nlu_examples)
    paths = evaluate_nlu.write_language_tests(parts, tmp_path / "out")
    assert paths == {lang: tmp_path / "out" / f"test_data_{lang}.yml" for lang in ("en", "de")}
    german = {m.get("text") for m in full.nlu_examples if languages[evaluate_nlu.example_key(m)] == ("de",)}
    assert texts(load_data(str(paths["de"]))) == texts(parts["de"]) and texts(parts["de"]) <= german


def test_split_only_reports_the_moves(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = write_dataset(tmp_path, german=True)
    # near-duplicates of the English greetings: each shares the part of its English text
    (data / "nlu" / "de" / "dup.yml").write_text(nlu_file({"greet": [f"{g}!" for g in GREET]}))
    (tmp_path / "config.yml").write_text("language: en\npipeline: []\n")
    out = tmp_path / "out"
    (out / "de").mkdir(parents=True)
    (out / "test_data_ka.yml").write_text("stale")
    assert evaluate_nlu.main(["--split-only", "--data", str(data), "--config", str(tmp_path / "config.yml"),
                              "--domain", str(tmp_path / "none.yml"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.yml")) == [
        "test_data.yml", "test_data_de.yml", "test_data_en.yml", "training_data.yml"]
    logged = capsys.readouterr().err
    moved = int(re.search(r"moved (\d+) test examples into training: near-duplicates", logged).group(1))
    assert moved == 0  # the stable split keeps near-duplicates together from the start
    counts = re.search(r"test examples per language: en (\d+), de (\d+) ->", logged)
    total = re.search(r"split (\d+) training / (\d+) test examples", logged)
    assert int(counts.group(1)) + int(counts.group(2)) == int(total.group(2))
    test = load_data(str(out / "test_data.yml"))
    train = {evaluate_nlu.normalise(m.get("text")) for m in load_data(str(out / "training_data.yml")).nlu_examples}
    assert not any(evaluate_nlu.normalise(m.get("text")) in train for m in test.nlu_examples)
    tested = {m.get("text") for m in test.nlu_examples}
    assert any(g in tested for g in GREET)
    assert all((g in tested) == (f"{g}!" in tested) for g in GREET)


def test_split_is_stable_when_examples_are_added_or_changed(tmp_path: Path) -> None:
    """Rounds of new data are measured on the same test examples: an example's part
    depends on its own text, not on what else the data hold."""
    data = write_dataset(tmp_path)
    train, test = evaluate_nlu.split(evaluate_nlu.load_nlu_data(data), 0.8, 42)
    more = {"greet": [f"{g} and welcome {i}" for i, g in enumerate(GREET * 3)],
            "goodbye": ["bye", "see you", "ciao", "take care", "later", "farewell"]}
    (data / "nlu" / "more.yml").write_text(nlu_file(more))
    (data / "nlu" / "main.yml").write_text((data / "nlu" / "main.yml").read_text().replace("hiya", "hiya there"))
    train2, test2 = evaluate_nlu.split(evaluate_nlu.load_nlu_data(data), 0.8, 42)
    unchanged = lambda part: set(split_signature(part)) - {("greet", "hiya"), ("greet", "hiya there")}  # noqa: E731
    assert unchanged(test) <= set(split_signature(test2))
    assert unchanged(train) <= set(split_signature(train2))
    # About a fifth of the new texts are test examples; each class keeps both parts.
    added = {("greet", t) for t in more["greet"]} | {("goodbye", t) for t in more["goodbye"]}
    assert 3 <= len(added & set(split_signature(test2))) <= 14
    assert {m.get_full_intent() for m in test2.nlu_examples} == {m.get_full_intent() for m in train2.nlu_examples}


def test_split_gives_every_class_both_parts_whatever_the_hash(tmp_path: Path) -> None:
    """Two examples of a class both in train (or both in test) by their hash: one moves."""
    data = write_dataset(tmp_path)
    full = evaluate_nlu.load_nlu_data(data)
    for fraction in (0.01, 0.99):
        train, test = evaluate_nlu.split(full, fraction, 42)
        classes = {m.get_full_intent() for m in full.nlu_examples}
        assert {m.get_full_intent() for m in train.nlu_examples} == classes
        assert {m.get_full_intent() for m in test.nlu_examples} == classes


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


def script_command(tmp_path: Path, data: Path) -> tuple:
    config = tmp_path / "config.yml"
    config.write_text(TINY_CONFIG)
    out, cache = tmp_path / "results", tmp_path / "cache"
    command = [
        str(PYTHON), str(SCRIPT), "--data", str(data), "--config", str(config), "--domain", str(tmp_path / "none.yml"),
        "--out", str(out), "--cache", str(cache), "--min-intent-accuracy-en", "0", "--min-intent-accuracy", "0",
        "--min-response-accuracy", "0", "--min-product-f1", "0", "--min-test-examples", "1",
        "--entity", "color=CRFEntityExtractor", "--entity", "order_id=RegexEntityExtractor",
        "--entity", "product=CRFEntityExtractor",
    ]
    env = {**os.environ, "RASA_CACHE_DIRECTORY": str(tmp_path / "rasa-cache")}
    return command, out, cache, env


def test_whole_script_on_a_tiny_dataset(tmp_path: Path) -> None:
    """English only, as before the languages: the reports go to <out>/en."""
    data = write_dataset(tmp_path, examples_per_intent=8)
    command, out, cache, env = script_command(tmp_path, data)
    first = subprocess.run([*command, "--min-entity-f1", "0"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=240, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "trained in" in first.stderr
    assert len(list(cache.glob("nlu-eval-*.tar.gz"))) == 1
    for report in ("intent_report.json", "response_selection_report.json", "RegexEntityExtractor_report.json",
                   "CRFEntityExtractor_report.json"):
        assert (out / "en" / report).is_file(), report
    for split_file in ("training_data.yml", "test_data.yml", "test_data_en.yml"):
        assert (out / split_file).is_file(), split_file
    assert (out / "test_data.yml").read_text() == (out / "test_data_en.yml").read_text()
    # stdout is the table only
    assert first.stdout.startswith("language  metric ")
    assert re.search(r"en\s+intent accuracy\s+\d\.\d{3}\s+0\.000\s+SKIP", first.stdout)
    assert re.search(r"en\s+order_id \(RegexEntityExtractor\)\s+1\.000\s+support [1-9]", first.stdout)
    assert re.search(r"en\s+product \(CRFEntityExtractor\)\s+n/a\s+0\.000\s+SKIP\s+support 0; no test examples",
                     first.stdout)
    assert "PASS: every threshold is met (gated: en)" in first.stdout

    # Unchanged data: the cached model is used. A demanding threshold fails the run.
    second = subprocess.run([*command, "--min-entity-f1", "1.01"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=240, env=env)
    assert second.returncode == 1, second.stdout + second.stderr
    assert "(cached)" in second.stderr
    assert re.search(r"en\s+entity F1 \(3 entities, support-weighted\)\s+\d\.\d{3}\s+1\.010\s+FAIL", second.stdout)


def test_train_only_trains_the_model_the_full_run_then_reuses(tmp_path: Path) -> None:
    """`make test` trains the held-out model beside the project model (--train-only);
    the evaluation after the tests must find it in the cache, not train again."""
    data = write_dataset(tmp_path, examples_per_intent=8)
    command, out, cache, env = script_command(tmp_path, data)
    trained = subprocess.run([*command, "--train-only"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=240, env=env)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "trained in" in trained.stderr and trained.stdout == ""
    assert len(list(cache.glob("nlu-eval-*.tar.gz"))) == 1
    assert not list(out.glob("*/*_report.json"))  # nothing tested
    full = subprocess.run([*command, "--min-entity-f1", "0"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=240, env=env)
    assert full.returncode == 0, full.stdout + full.stderr
    assert "(cached)" in full.stderr
    assert (out / "en" / "intent_report.json").is_file()


def test_whole_script_on_tiny_bilingual_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """English and German: one model, one test run and one set of reports per language."""
    data = write_dataset(tmp_path, examples_per_intent=8, german=True)
    command, out, cache, env = script_command(tmp_path, data)
    # A seed whose split has German examples with entities in test (the split decides by
    # each text's hash, so with data this small it may have none).
    full, languages = evaluate_nlu.load_nlu_data_with_languages(data)
    seed = next(s for s in range(100) if any(
        m.get("entities") and "de" in languages[evaluate_nlu.example_key(m)] for m in evaluate_nlu.split(full, 0.8, s)[1].nlu_examples))
    run = subprocess.run([*command, "--min-entity-f1", "0", "--seed", str(seed)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=240, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(list(cache.glob("nlu-eval-*.tar.gz"))) == 1  # one model for both languages
    assert "testing en" in run.stderr and "testing de" in run.stderr
    for lang in ("en", "de"):
        assert (out / f"test_data_{lang}.yml").is_file()
        assert (out / lang / "intent_report.json").is_file(), lang
        assert (out / lang / "CRFEntityExtractor_report.json").is_file(), lang
        assert re.search(rf"\n{lang}\s+test examples\s+[1-9]\d*\s+gated\n", run.stdout), run.stdout
        assert re.search(rf"\n{lang}\s+intent accuracy\s+\d\.\d{{3}}\s+0\.000\s+SKIP", run.stdout)
    # German test examples are German: none of them is in the English test file.
    german = {m.get("text") for m in load_data(str(out / "test_data_de.yml")).nlu_examples}
    english = {m.get("text") for m in load_data(str(out / "test_data_en.yml")).nlu_examples}
    assert german and english and not german & english
    without_entities = {re.sub(r"\[([^]]+)\]\([^)]+\)", r"\1", t) for examples in GERMAN.values() for t in examples}
    assert german <= without_entities
    # German held to an impossible intent accuracy, English to none: German fails alone.
    code = evaluate_nlu.main(["--check-only", "--out", str(out), "--min-intent-accuracy-en", "0",
                              "--min-intent-accuracy", "1.01", "--min-response-accuracy", "0", "--min-entity-f1", "0",
                              "--min-product-f1", "0", "--min-test-examples", "1"])
    printed = capsys.readouterr().out
    assert code == 1
    assert printed.rstrip().endswith("FAIL: de intent accuracy")
