#!/usr/bin/env python
"""Held-out NLU evaluation with thresholds: exits 1 when the NLU got worse than allowed.

    python scripts/evaluate_nlu.py [--data data] [--config config.yml] [--domain domain.yml]
        [--fraction 0.8] [--seed 42] [--out results/nlu] [--cache var/test-models]
        [--min-intent-accuracy 0.95] [--min-response-accuracy 0.9] [--min-entity-f1 0.9]

1. Split: the NLU files under --data (data/nlu/*.yml and the retrieval responses in
   data/responses/) are split with Rasa's own stratified splitter (what `rasa data split
   nlu` does, `TrainingData.train_test_split(fraction, seed)`): the same data and seed
   give the same split, every intent and faq sub-intent keeps examples in train, and
   each part keeps the responses its faq examples need. Written to
   <out>/training_data.yml and <out>/test_data.yml.
2. Train: an NLU-only model on the train part (`rasa train nlu`), cached in --cache as
   nlu-eval-<fingerprint>.tar.gz. The fingerprint covers what the model is trained
   from: the train split, the config file (and the code of its custom components), the
   domain's retrieval responses and the Rasa version. A re-run on unchanged data skips training.
3. Test: `rasa test nlu` on the test part; reports (JSON, errors) go to --out.
4. Check: intent accuracy (intent_report.json), faq response-selection accuracy
   (response_selection_report.json), and entity F1: each SPEC entity's f1-score is
   taken from the report of the extractor responsible for it (DIETClassifier for
   product/category/size/color, RegexEntityExtractor for order_id; change with
   --entity NAME=EXTRACTOR), and combined as the support-weighted average.

Prints a table (metric, value, threshold, PASS/FAIL) and the most confused intents.
Exit codes: 0 all thresholds met, 1 a threshold failed, 2 usage or data error.
--split-only stops after step 1; --check-only runs step 4 on the reports already in --out.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

# Like the `rasa` command: custom components of the config (connectors.referred_product...)
# are imported relative to the current directory, the project root.
if os.getcwd() not in sys.path:
    sys.path.insert(1, os.getcwd())
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
with warnings.catch_warnings():  # Rasa's dependencies warn about themselves at import
    warnings.simplefilter("ignore")
    import rasa.shared.data  # noqa: F401
    import rasa.shared.nlu.training_data.loading  # noqa: F401
warnings.filterwarnings("ignore", category=DeprecationWarning)

# Who is responsible for which SPEC entity (SPEC section 5; config.yml).
DEFAULT_ENTITY_EXTRACTORS: Dict[str, str] = {
    "product": "DIETClassifier",
    "category": "DIETClassifier",
    "size": "DIETClassifier",
    "color": "DIETClassifier",
    "order_id": "RegexEntityExtractor",
}
INTENT_REPORT = "intent_report.json"
RESPONSE_REPORT = "response_selection_report.json"
SUMMARY_KEYS = frozenset({"accuracy", "macro avg", "weighted avg", "micro avg", "samples avg"})
MODEL_PREFIX = "nlu-eval-"
KEEP_CACHED_MODELS = 2  # about 100 MB each for the shop's data
TRAIN_FILE = "training_data.yml"
TEST_FILE = "test_data.yml"


class EvaluationError(Exception):
    """Bad input (no data, missing files); printed without a trace, exit 2."""


# --------------------------------------------------------------------- split


def load_nlu_data(data: Path) -> Any:
    """Every NLU file under `data` (intents, entities, synonyms, lookups, regexes and
    retrieval responses), merged; stories and rules are not NLU data and are left out."""
    from rasa.shared.data import get_data_files, is_nlu_file
    from rasa.shared.nlu.training_data.loading import load_data

    if not data.exists():
        raise EvaluationError(f"no training data at {data}")
    files = sorted(get_data_files([str(data)], is_nlu_file))
    if not files:
        raise EvaluationError(f"no NLU files under {data}")
    parts = [load_data(f) for f in files]
    training_data = parts[0].merge(*parts[1:]) if len(parts) > 1 else parts[0]
    if not training_data.intent_examples:
        raise EvaluationError(f"no intent examples under {data}")
    return training_data


def split(training_data: Any, fraction: float, seed: int) -> Tuple[Any, Any]:
    """(train, test) with Rasa's stratified splitter, as `rasa data split nlu` does."""
    return training_data.train_test_split(train_frac=fraction, random_seed=seed)


def to_yaml(training_data: Any) -> str:
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter

    return RasaYAMLWriter().dumps(training_data)


def write_split(train: Any, test: Any, out: Path) -> Tuple[Path, Path, str]:
    out.mkdir(parents=True, exist_ok=True)
    train_yaml, test_yaml = to_yaml(train), to_yaml(test)
    train_path, test_path = out / TRAIN_FILE, out / TEST_FILE
    train_path.write_text(train_yaml, encoding="utf-8")
    test_path.write_text(test_yaml, encoding="utf-8")
    return train_path, test_path, train_yaml


# --------------------------------------------------------------------- train (cached)


def retrieval_responses(domain: Optional[Path]) -> Dict[str, Any]:
    """The part of the domain that reaches NLU training: responses of retrieval intents
    (Rasa merges them into the NLU data, ResponsesSyncImporter)."""
    if domain is None or not domain.exists():
        return {}
    from rasa.shared.core.domain import Domain

    with warnings.catch_warnings():  # the domain's own warnings are `rasa data validate`'s job
        warnings.simplefilter("ignore")
        return Domain.load(str(domain)).retrieval_intent_responses


def custom_component_sources(config: Path) -> List[str]:
    """Source of the config's own components (`connectors.referred_product...`): a
    change of their code is a change of the model."""
    import importlib.util

    from rasa.shared.utils.io import read_config_file

    sources = []
    for component in read_config_file(str(config)).get("pipeline") or []:
        name = component.get("name", "") if isinstance(component, dict) else ""
        module = name.rpartition(".")[0]
        if not module:
            continue
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        origin = Path(spec.origin) if spec and spec.origin else None
        sources.append(f"{name}\n" + (origin.read_text(encoding="utf-8") if origin and origin.is_file() else "?"))
    return sources


def fingerprint(train_yaml: str, config: Path, domain: Optional[Path]) -> str:
    import rasa

    digest = hashlib.sha256()
    for part in (
        rasa.__version__,
        train_yaml,
        config.read_text(encoding="utf-8"),
        *custom_component_sources(config),
        json.dumps(retrieval_responses(domain), sort_keys=True, ensure_ascii=False),
    ):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def train_or_reuse(
    train_path: Path, config: Path, domain: Optional[Path], cache: Path, key: str, retrain: bool = False
) -> Tuple[Path, bool]:
    """(model archive, True if it came from the cache)."""
    model = cache / f"{MODEL_PREFIX}{key}.tar.gz"
    if model.is_file() and not retrain:
        model.touch()  # most recently used: kept by the pruning below
        return model, True
    from rasa.model_training import train_nlu

    cache.mkdir(parents=True, exist_ok=True)
    # Train into a scratch directory and move the archive in when complete, so that an
    # interrupted run never leaves a half-written model under the cached name.
    with tempfile.TemporaryDirectory(dir=cache, prefix=".training-") as scratch:
        trained = train_nlu(
            config=str(config),
            nlu_data=str(train_path),
            output=scratch,
            fixed_model_name=model.name[: -len(".tar.gz")],
            domain=str(domain) if domain and domain.exists() else None,
        )
        if not trained or not Path(trained).is_file():
            raise EvaluationError("training failed (see the messages above)")
        os.replace(trained, model)
    prune_cache(cache)
    return model, False


def prune_cache(cache: Path, keep: int = KEEP_CACHED_MODELS) -> None:
    models = sorted(cache.glob(f"{MODEL_PREFIX}*.tar.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in models[keep:]:
        old.unlink(missing_ok=True)


# --------------------------------------------------------------------- test


def clear_reports(out: Path) -> None:
    """Remove the reports of an earlier run, so no stale report is read."""
    for pattern in ("*_report.json", "*_errors.json", "*_successes.json", "*.png"):
        for path in out.glob(pattern):
            path.unlink()


def run_tests(model: Path, test_path: Path, out: Path, domain: Optional[Path], plots: bool) -> None:
    from rasa.core.agent import Agent
    from rasa.nlu.test import run_evaluation

    clear_reports(out)
    agent = Agent.load(model_path=str(model))
    asyncio.run(run_evaluation(
        str(test_path),
        agent.processor,
        output_directory=str(out),
        successes=False,
        errors=True,
        disable_plotting=not plots,
        report_as_dict=True,
        domain_path=str(domain) if domain and domain.exists() else None,
    ))


# --------------------------------------------------------------------- check


@dataclasses.dataclass(frozen=True)
class EntityScore:
    entity: str
    extractor: str
    f1: Optional[float]  # None: no test example has this entity
    support: int
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Confusion:
    label: str
    f1: float
    support: int
    confused_with: Dict[str, int]


@dataclasses.dataclass(frozen=True)
class Metrics:
    intent_accuracy: Optional[float]
    response_accuracy: Optional[float]
    entity_f1: Optional[float]
    entities: List[EntityScore]
    worst_intents: List[Confusion]
    worst_responses: List[Confusion]


@dataclasses.dataclass(frozen=True)
class Check:
    metric: str
    value: Optional[float]
    threshold: float

    @property
    def passed(self) -> bool:
        if self.threshold <= 0:
            return True  # the check is switched off
        return self.value is not None and self.value >= self.threshold

    @property
    def result(self) -> str:
        if self.threshold <= 0:
            return "SKIP"
        return "PASS" if self.passed else "FAIL"


def _read_report(path: Path) -> Optional[Dict[str, Any]]:
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise EvaluationError(f"{path} is not valid JSON: {error}") from error
    return report if isinstance(report, dict) else None


def _labels(report: Optional[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    if not report:
        return {}
    return {k: v for k, v in report.items() if k not in SUMMARY_KEYS and isinstance(v, dict)}


def _accuracy(report: Optional[Dict[str, Any]]) -> Optional[float]:
    if not report:
        return None
    if isinstance(report.get("accuracy"), (int, float)):
        return float(report["accuracy"])
    micro = report.get("micro avg")  # sklearn writes this instead when labels are a subset
    if isinstance(micro, dict) and isinstance(micro.get("f1-score"), (int, float)):
        return float(micro["f1-score"])
    return None


def _worst(report: Optional[Dict[str, Any]], count: int) -> List[Confusion]:
    rows = [
        Confusion(label, float(values.get("f1-score", 0.0)), int(values.get("support", 0)),
                  dict(values.get("confused_with") or {}))
        for label, values in _labels(report).items()
        if int(values.get("support", 0)) > 0
        and (float(values.get("f1-score", 0.0)) < 1.0 or values.get("confused_with"))
    ]
    rows.sort(key=lambda r: (r.f1, -sum(r.confused_with.values()), r.label))
    return rows[:count]


def entity_scores(reports: Dict[str, Dict[str, Any]], extractors: Dict[str, str]) -> List[EntityScore]:
    """Each entity's f1 from its responsible extractor's report. The targets (and so the
    supports) are the same in every extractor's report; an entity the responsible
    extractor never predicted, while the test data has it, scores 0."""
    scores = []
    for entity, extractor in extractors.items():
        own = _labels(reports.get(extractor)).get(entity)
        support = int(own.get("support", 0)) if own else 0
        if not own:
            for other in reports.values():
                row = _labels(other).get(entity)
                if row and int(row.get("support", 0)) > 0:
                    support = int(row["support"])
                    break
        if support == 0:
            scores.append(EntityScore(entity, extractor, None, 0, "no test examples"))
        elif own is None:
            note = "no report" if extractor not in reports else "not in report"
            scores.append(EntityScore(entity, extractor, 0.0, support, f"{extractor}: {note}"))
        else:
            scores.append(EntityScore(entity, extractor, float(own.get("f1-score", 0.0)), support))
    return scores


def weighted_f1(scores: Sequence[EntityScore]) -> Optional[float]:
    counted = [s for s in scores if s.f1 is not None and s.support > 0]
    total = sum(s.support for s in counted)
    if total == 0:
        return None
    return sum(s.f1 * s.support for s in counted) / total  # type: ignore[operator]


def read_metrics(out: Path, extractors: Optional[Dict[str, str]] = None, worst: int = 5) -> Metrics:
    extractors = extractors or DEFAULT_ENTITY_EXTRACTORS
    intent_report = _read_report(out / INTENT_REPORT)
    response_report = _read_report(out / RESPONSE_REPORT)
    entity_reports = {}
    for path in sorted(out.glob("*_report.json")):
        if path.name in (INTENT_REPORT, RESPONSE_REPORT):
            continue
        report = _read_report(path)
        if report is not None:
            entity_reports[path.name[: -len("_report.json")]] = report
    scores = entity_scores(entity_reports, extractors)
    return Metrics(
        intent_accuracy=_accuracy(intent_report),
        response_accuracy=_accuracy(response_report),
        entity_f1=weighted_f1(scores),
        entities=scores,
        worst_intents=_worst(intent_report, worst),
        worst_responses=_worst(response_report, worst),
    )


def checks(metrics: Metrics, min_intent: float, min_response: float, min_entity: float) -> List[Check]:
    return [
        Check("intent accuracy", metrics.intent_accuracy, min_intent),
        Check("response selection accuracy (faq)", metrics.response_accuracy, min_response),
        Check(f"entity F1 ({len(metrics.entities)} entities, support-weighted)", metrics.entity_f1, min_entity),
    ]


def _number(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _confusions(rows: Sequence[Confusion], title: str) -> List[str]:
    if not rows:
        return []
    width = max(len(title), *(len(r.label) for r in rows))
    lines = ["", f"{title:<{width}}  {'f1':>5}  {'support':>7}  confused with (count)"]
    for row in rows:
        others = ", ".join(f"{label} ({n})" for label, n in sorted(row.confused_with.items(), key=lambda x: -x[1]))
        lines.append(f"{row.label:<{width}}  {row.f1:>5.3f}  {row.support:>7}  {others or '-'}")
    return lines


def format_report(metrics: Metrics, results: Sequence[Check]) -> str:
    width = max(len(c.metric) for c in results)
    lines = [f"{'metric':<{width}}  {'value':>6}  {'min':>6}  result"]
    for check in results:
        lines.append(f"{check.metric:<{width}}  {_number(check.value):>6}  {check.threshold:>6.3f}  {check.result}")
    for score in metrics.entities:
        label = f"  {score.entity} ({score.extractor})"
        extra = f"  support {score.support}" + (f"; {score.note}" if score.note else "")
        lines.append(f"{label:<{width}}  {_number(score.f1):>6}  {'':>6}  {extra.strip()}")
    lines += _confusions(metrics.worst_intents, "most confused intents")
    lines += _confusions(metrics.worst_responses, "most confused faq answers")
    failed = [c.metric for c in results if not c.passed]
    lines += ["", "FAIL: " + "; ".join(failed) if failed else "PASS: every threshold is met"]
    return "\n".join(lines)


# --------------------------------------------------------------------- command line


def _fraction(value: str) -> float:
    number = float(value)
    if not 0.0 < number < 1.0:
        raise argparse.ArgumentTypeError("the training fraction is between 0 and 1 (exclusive)")
    return number


def _entity(value: str) -> Tuple[str, str]:
    name, sep, extractor = value.partition("=")
    if not sep or not name or not extractor:
        raise argparse.ArgumentTypeError("expected ENTITY=EXTRACTOR, e.g. order_id=RegexEntityExtractor")
    return name, extractor


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data"), help="training data directory (default data)")
    parser.add_argument("--config", type=Path, default=Path("config.yml"))
    parser.add_argument("--domain", type=Path, default=Path("domain.yml"))
    parser.add_argument("--fraction", type=_fraction, default=0.8, help="share of examples for training (0.8)")
    parser.add_argument("--seed", type=int, default=42, help="random seed of the split (42)")
    parser.add_argument("--out", type=Path, default=Path("results/nlu"), help="split and reports (results/nlu)")
    parser.add_argument("--cache", type=Path, default=Path("var/test-models"), help="trained models (var/test-models)")
    parser.add_argument("--min-intent-accuracy", type=float, default=0.95)
    parser.add_argument("--min-response-accuracy", type=float, default=0.9)
    parser.add_argument("--min-entity-f1", type=float, default=0.9)
    parser.add_argument("--entity", type=_entity, action="append", default=[], metavar="ENTITY=EXTRACTOR",
                        help="entity and the extractor responsible for it; replaces the defaults "
                        + ", ".join(f"{e}={x}" for e, x in DEFAULT_ENTITY_EXTRACTORS.items()))
    parser.add_argument("--worst", type=int, default=5, help="how many confused intents to show (5)")
    parser.add_argument("--plots", action="store_true", help="also draw confusion matrices and histograms")
    parser.add_argument("--verbose", action="store_true", help="Rasa's INFO logs while training and testing")
    parser.add_argument("--retrain", action="store_true", help="train even if a cached model matches")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--split-only", action="store_true", help="write the split and stop")
    mode.add_argument("--check-only", action="store_true", help="only check the reports already in --out")
    return parser.parse_args(argv)


def configure_logging(verbose: bool) -> None:
    """What the `rasa` command does: Rasa's loggers and structlog at one level (without
    this, structlog prints a debug line per parsed test message)."""
    import logging

    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s  - %(message)s")
    configure_logging_and_warnings(level, warn_only_once=True, filter_repeated_logs=True)
    configure_structlog(level)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not args.check_only:
        configure_logging(args.verbose)
    extractors = dict(args.entity) if args.entity else dict(DEFAULT_ENTITY_EXTRACTORS)
    started = time.monotonic()
    try:
        if not args.check_only:
            if not args.config.is_file():
                raise EvaluationError(f"config file {args.config} not found")
            domain = args.domain if args.domain.exists() else None
            train, test = split(load_nlu_data(args.data), args.fraction, args.seed)
            train_path, test_path, train_yaml = write_split(train, test, args.out)
            key = fingerprint(train_yaml, args.config, domain)
            print(
                f"evaluate_nlu: split {len(train.nlu_examples)} training / {len(test.nlu_examples)} test examples "
                f"(fraction {args.fraction}, seed {args.seed}) -> {train_path}, {test_path}; fingerprint {key}",
                file=sys.stderr,
            )
            if args.split_only:
                return 0
            # Rasa prints progress to stdout; stdout is kept for the result table.
            with contextlib.redirect_stdout(sys.stderr):
                model, cached = train_or_reuse(train_path, args.config, domain, args.cache, key, args.retrain)
                trained_at = time.monotonic()
                how = "cached" if cached else f"trained in {trained_at - started:.0f} s"
                print(f"evaluate_nlu: model {model} ({how})")
                run_tests(model, test_path, args.out, domain, args.plots)
            print(f"evaluate_nlu: tested in {time.monotonic() - trained_at:.0f} s; reports in {args.out}",
                  file=sys.stderr)
        elif not (args.out / INTENT_REPORT).is_file():
            raise EvaluationError(f"no {INTENT_REPORT} in {args.out}")
        metrics = read_metrics(args.out, extractors, args.worst)
    except EvaluationError as error:
        print(f"evaluate_nlu: {error}", file=sys.stderr)
        return 2
    results = checks(metrics, args.min_intent_accuracy, args.min_response_accuracy, args.min_entity_f1)
    print(format_report(metrics, results))
    return 0 if all(c.passed for c in results) else 1


if __name__ == "__main__":
    sys.exit(main())
