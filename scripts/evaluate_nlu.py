#!/usr/bin/env python
"""Held-out NLU evaluation per language with thresholds: exits 1 when the NLU got worse than allowed.

    python scripts/evaluate_nlu.py [--data data] [--config config.yml] [--domain domain.yml]
        [--fraction 0.8] [--seed 42] [--out results/nlu] [--cache $SHOP_MODEL_CACHE]
        [--min-intent-accuracy-en 0.95] [--min-intent-accuracy 0.9] [--min-response-accuracy 0.9]
        [--min-entity-f1 0.85] [--min-product-f1 0.85] [--min-test-examples 20]

Languages: English NLU files are data/nlu/*.yml, every other language's are
data/nlu/<lang>/*.yml (<lang> an ISO code: de, ru, cs, ka, hy, zh). Every example's
language is that of the file it comes from (any other NLU file, such as the retrieval
responses in data/responses/ or the generated data/nlu/catalog.yml, counts as English).
An example written identically (same text and intent) in the files of several languages
is one example of each of them.

1. Split: the NLU files under --data are loaded one by one (recording the language of
   each example: text and intent -> language, as Rasa's merge and split keep no file
   origin), merged, and split stably: an example's part is decided by a hash of the seed
   and its normalised text (below), about 1 - fraction of the texts in test. The same
   data and seed give the same split, and new or changed examples do not move the
   others, so that two rounds of data are measured on mostly the same test examples
   (Rasa's own splitter, `rasa data split nlu`, re-draws every part when one example
   changes). Every intent and faq sub-intent keeps examples in train and, with two or
   more examples, in test; each part keeps the responses its faq examples need.
   Then the test part is made honest: a test example that is a near-duplicate of a
   training example (same text once case-folded, NFKD-decomposed without combining
   marks, without punctuation, symbols/emoji and whitespace, digits as 0; any language,
   any intent) moves into the training part. Where that would leave an intent of a
   language without test examples, all examples of one of its moved texts go to the
   test part instead (if every intent keeps training examples), so every intent keeps
   the test examples it had in each language. Written to <out>/training_data.yml,
   <out>/test_data.yml (all languages) and <out>/test_data_<lang>.yml.
2. Train: one NLU-only model for all languages on the train part (`rasa train nlu`),
   cached in --cache as nlu-eval-<fingerprint>.tar.gz. The fingerprint covers what the
   model is trained from: the train split, the config file (and the code of its custom
   components), the domain's retrieval responses, the Rasa version and the lock file
   (constraints.txt). A re-run on unchanged data skips training; the default cache is the
   machine's model cache (SHOP_MODEL_CACHE, scripts/env.sh), so a new clone reuses it too.
3. Test: `rasa test nlu` once per language on <out>/test_data_<lang>.yml; reports (JSON,
   errors) go to <out>/<lang>/.
4. Check, per language: intent accuracy (intent_report.json), faq response-selection
   accuracy (response_selection_report.json), entity F1: each SPEC entity's f1-score is
   taken from the report of the extractor responsible for it (DIETClassifier for
   product/category/size/color, RegexEntityExtractor for order_id; change with
   --entity NAME=EXTRACTOR), and combined as the support-weighted average, and the
   `product` entity's F1 on its own. Thresholds: intent accuracy 0.95 for English and
   0.90 for every other language, faq response selection 0.90, entity F1 0.85, product
   F1 0.85 (a threshold of 0 switches its check off; a metric without test examples is
   n/a and fails). A language with fewer than --min-test-examples test examples is
   reported but not gated; when no language is gated, nothing was checked: that fails.

Prints (stdout) a table, one row per language and metric (language, metric, value,
threshold, result: PASS, FAIL, SKIP for a switched-off check, "ok"/"low (not gated)"
for a language with too few test examples), each entity's F1 under the entity F1 row,
then the most confused intents and faq answers of each language, and a last line
starting PASS: or FAIL:. Progress and the split's numbers go to stderr.
Exit codes: 0 every gated threshold met, 1 a threshold failed, 2 usage or data error.
--split-only stops after step 1, --train-only after step 2; --check-only runs step 4 on
the reports already in --out (in <out>/<lang>/; reports directly in <out>, as written
before the languages, count as English).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import sys
import tempfile
import time
import unicodedata
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

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
PRODUCT_ENTITY = "product"  # gated on its own, per language
DEFAULT_LANGUAGE = "en"  # the files directly in data/nlu (and any NLU file outside it)
# A folder of data/nlu is a language: an ISO 639 code, optionally with a script or region.
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")
INTENT_REPORT = "intent_report.json"
RESPONSE_REPORT = "response_selection_report.json"
SUMMARY_KEYS = frozenset({"accuracy", "macro avg", "weighted avg", "micro avg", "samples avg"})
MODEL_PREFIX = "nlu-eval-"
KEEP_CACHED_MODELS = 2  # about 100 MB each for the shop's data
TRAIN_FILE = "training_data.yml"
TEST_FILE = "test_data.yml"
LANGUAGE_TEST_FILE = "test_data_{}.yml"

ExampleKey = Tuple[str, str]  # (text, full intent such as faq/shipping_time)
Languages = Dict[ExampleKey, Tuple[str, ...]]


class EvaluationError(Exception):
    """Bad input (no data, missing files); printed without a trace, exit 2."""


# --------------------------------------------------------------------- languages


def file_language(path: Path, data: Path) -> str:
    """data/nlu/<lang>/... -> <lang>; data/nlu/*.yml and NLU files outside data/nlu -> en.
    (--data may also be the nlu folder itself.)"""
    nlu_root = data if data.name == "nlu" else data / "nlu"
    try:
        parts = path.resolve().relative_to(nlu_root.resolve()).parts
    except ValueError:
        return DEFAULT_LANGUAGE
    if len(parts) < 2:
        return DEFAULT_LANGUAGE
    language = parts[0]
    if not LANGUAGE_CODE.fullmatch(language):
        raise EvaluationError(
            f"{nlu_root / language}: the folders of {nlu_root} are languages, named by their ISO code "
            f"(de, ru, zh ...); {language!r} is not one"
        )
    return language


def example_key(message: Any) -> ExampleKey:
    return message.get("text") or "", message.get_full_intent() or ""


def example_languages(message: Any, languages: Languages) -> Tuple[str, ...]:
    found = languages.get(example_key(message))
    if not found:
        raise EvaluationError(f"the language of the example {message.get('text')!r} is unknown")
    return found


def language_order(languages: Iterable[str]) -> List[str]:
    """English first, then the others alphabetically."""
    return sorted(set(languages), key=lambda lang: (lang != DEFAULT_LANGUAGE, lang))


def normalise(text: str) -> str:
    """The text near-duplicates share: case-folded, NFKD without combining marks, without
    punctuation, symbols (emoji), separators (whitespace) and controls, digits as 0.
    A text with nothing left (only emoji, say) is compared as written, without case and
    whitespace, so that 👍 and 👎 stay different texts."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    kept = []
    for char in decomposed:
        category = unicodedata.category(char)
        if category == "Nd":
            kept.append("0")
        elif category[0] in "LN":
            kept.append(char)
        # M* (combining marks), P* (punctuation), S* (symbols, emoji), Z* (whitespace)
        # and C* (controls, zero-width joiners) are left out.
    if kept:
        return "".join(kept)
    return "\0" + "".join(text.casefold().split())


# --------------------------------------------------------------------- split


def load_nlu_data_with_languages(data: Path) -> Tuple[Any, Languages]:
    """Every NLU file under `data` (intents, entities, synonyms, lookups, regexes and
    retrieval responses), merged, and the language(s) of every example: (text, intent)
    -> the languages of the files it is written in. Stories and rules are not NLU data
    and are left out."""
    from rasa.shared.data import get_data_files, is_nlu_file
    from rasa.shared.nlu.training_data.loading import load_data

    if not data.exists():
        raise EvaluationError(f"no training data at {data}")
    files = sorted(get_data_files([str(data)], is_nlu_file))
    if not files:
        raise EvaluationError(f"no NLU files under {data}")
    parts = []
    found: Dict[ExampleKey, List[str]] = {}
    for file in files:
        part = load_data(file)
        language = file_language(Path(file), data)
        for message in part.nlu_examples:
            known = found.setdefault(example_key(message), [])
            if language not in known:
                known.append(language)
        parts.append(part)
    training_data = parts[0].merge(*parts[1:]) if len(parts) > 1 else parts[0]
    if not training_data.intent_examples:
        raise EvaluationError(f"no intent examples under {data}")
    return training_data, {key: tuple(language_order(langs)) for key, langs in found.items()}


def load_nlu_data(data: Path) -> Any:
    """The merged NLU data under `data` (see load_nlu_data_with_languages)."""
    return load_nlu_data_with_languages(data)[0]


def split_score(text: str, seed: int) -> float:
    """Where an example's text falls in [0, 1): a hash of the seed and its normalised text
    (the same in every process and on every machine)."""
    digest = hashlib.sha256(f"{seed}\0{normalise(text)}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split(training_data: Any, fraction: float, seed: int) -> Tuple[Any, Any]:
    """(train, test), stable: an example is in test when its split_score is >= `fraction`,
    so its part depends on its own text and the seed only. New or changed examples never
    move the others, and all examples with the same normalised text (near-duplicates, in
    any language and intent) share a part. Then, class by class (intent or faq
    sub-intent, sorted): a class without training examples gets the text of its lowest
    score back into train; a class of two or more examples without test examples gives
    the text of its highest score to test, unless that would leave some class without
    training examples."""
    examples = list(training_data.intent_examples)
    text = {id(m): normalise(m.get("text") or "") for m in examples}
    score = {id(m): split_score(m.get("text") or "", seed) for m in examples}
    in_test = {text[id(m)] for m in examples if score[id(m)] >= fraction}

    def members(part_test: bool) -> Dict[str, List[Any]]:
        found: Dict[str, List[Any]] = {}
        for m in examples:
            if (text[id(m)] in in_test) == part_test:
                found.setdefault(m.get_full_intent(), []).append(m)
        return found

    classes = sorted({m.get_full_intent() for m in examples})
    for intent in classes:
        if intent not in members(False):
            lowest = min(members(True)[intent], key=lambda m: (score[id(m)], text[id(m)]))
            in_test.discard(text[id(lowest)])
    for intent in classes:
        own = [m for m in examples if m.get_full_intent() == intent]
        if len(own) < 2 or intent in members(True):
            continue
        for candidate in sorted(own, key=lambda m: (-score[id(m)], text[id(m)])):
            in_test.add(text[id(candidate)])
            if set(members(False)) == set(classes):
                break
            in_test.discard(text[id(candidate)])
    train = [m for m in examples if text[id(m)] not in in_test]
    test = [m for m in examples if text[id(m)] in in_test]
    return part_of(training_data, train), part_of(training_data, test)


def needed_responses(training_data: Any, examples: Sequence[Any]) -> Dict[str, Any]:
    """The responses (utter_faq/...) of the retrieval examples among `examples`."""
    from rasa.shared.nlu.training_data.util import intent_response_key_to_template_key

    responses = {}
    for example in examples:
        if example.get("intent_response_key") and example.get("response"):
            key = intent_response_key_to_template_key(example.get_full_intent())
            if key in training_data.responses:
                responses[key] = training_data.responses[key]
    return responses


def part_of(training_data: Any, examples: Sequence[Any]) -> Any:
    """TrainingData of `examples` with the synonyms, regexes and lookup tables of
    `training_data` and the responses the examples need (what Rasa's split gives each part)."""
    from rasa.shared.nlu.training_data.training_data import TrainingData

    return TrainingData(
        list(examples),
        entity_synonyms=training_data.entity_synonyms,
        regex_features=training_data.regex_features,
        lookup_tables=training_data.lookup_tables,
        responses=needed_responses(training_data, examples),
    )


@dataclasses.dataclass
class HonestSplit:
    train: Any
    test: Any
    moved: List[Any]  # near-duplicate test examples now in train
    restored: List[Any]  # examples put (back) into test so that an intent keeps test examples
    without_test: List[Tuple[str, str]]  # (intent, language) left without test examples


def _groups(message: Any, languages: Languages) -> List[Tuple[str, str]]:
    return [(message.get_full_intent(), lang) for lang in example_languages(message, languages)]


def move_near_duplicates(training_data: Any, train: Any, test: Any, languages: Languages) -> HonestSplit:
    """Move every test example whose normalised text is also a training example's into
    the training part. Where an intent of a language had test examples and would have
    none left, one of its moved texts goes wholly to the test part instead (all examples
    with that normalised text, the training ones too), provided every intent keeps
    training examples; the text with the fewest training examples is chosen first."""
    normalised: Dict[int, str] = {}

    def text_of(message: Any) -> str:
        if id(message) not in normalised:
            normalised[id(message)] = normalise(message.get("text") or "")
        return normalised[id(message)]

    train_examples = list(train.training_examples)
    test_examples = list(test.training_examples)
    train_texts = {text_of(m) for m in train_examples}
    moved = [m for m in test_examples if text_of(m) in train_texts]
    moved_ids = {id(m) for m in moved}
    kept = [m for m in test_examples if id(m) not in moved_ids]
    new_train = train_examples + moved

    restored: List[Any] = []
    without_test: List[Tuple[str, str]] = []
    for group in sorted({g for m in moved for g in _groups(m, languages)}):
        if any(group in _groups(m, languages) for m in kept):
            continue
        candidates = []
        for text in {text_of(m) for m in moved if group in _groups(m, languages)}:
            bring = [m for m in new_train if text_of(m) == text]
            candidates.append((len(bring), text, bring))
        for _, _, bring in sorted(candidates, key=lambda c: (c[0], c[1])):
            bring_ids = {id(m) for m in bring}
            remaining = [m for m in new_train if id(m) not in bring_ids]
            left = {m.get_full_intent() for m in remaining}
            if all(m.get_full_intent() in left for m in bring):
                new_train = remaining
                kept.extend(bring)
                restored.extend(bring)
                break
        else:
            without_test.append(group)
    restored_ids = {id(m) for m in restored}
    moved = [m for m in moved if id(m) not in restored_ids]
    return HonestSplit(part_of(training_data, new_train), part_of(training_data, kept), moved, restored, without_test)


def language_test_parts(training_data: Any, test: Any, languages: Languages) -> Dict[str, Any]:
    """The test part of each language (English first)."""
    every = language_order(lang for langs in languages.values() for lang in langs)
    examples: Dict[str, List[Any]] = {lang: [] for lang in every}
    for message in test.training_examples:
        for lang in example_languages(message, languages):
            examples[lang].append(message)
    return {lang: part_of(training_data, found) for lang, found in examples.items()}


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


def write_language_tests(parts: Dict[str, Any], out: Path) -> Dict[str, Path]:
    """<out>/test_data_<lang>.yml for each language with test examples (those of an
    earlier run are removed first)."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(LANGUAGE_TEST_FILE.format("*")):
        stale.unlink()
    paths = {}
    for lang, part in parts.items():
        if part.training_examples:
            paths[lang] = out / LANGUAGE_TEST_FILE.format(lang)
            paths[lang].write_text(to_yaml(part), encoding="utf-8")
    return paths


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


def default_cache() -> Path:
    """The machine's model cache (`SHOP_MODEL_CACHE`, scripts/env.sh), shared by every
    checkout on the machine; without it var/test-models of this checkout."""
    return Path(os.environ.get("SHOP_MODEL_CACHE") or "var/test-models")


def lock_file() -> str:
    """The pinned dependencies (constraints.txt): another Rasa, TensorFlow or scikit-learn
    is another model."""
    path = Path(__file__).resolve().parents[1] / "constraints.txt"
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def fingerprint(train_yaml: str, config: Path, domain: Optional[Path]) -> str:
    import rasa

    digest = hashlib.sha256()
    for part in (
        rasa.__version__,
        lock_file(),
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


REPORT_PATTERNS = ("*_report.json", "*_errors.json", "*_successes.json", "*.png")


def clear_reports(out: Path) -> None:
    """Remove the reports of an earlier run (in <out> and its language folders), so no
    stale report is read."""
    if not out.is_dir():
        return
    folders = [out, *(p for p in out.iterdir() if p.is_dir() and LANGUAGE_CODE.fullmatch(p.name))]
    for folder in folders:
        for pattern in REPORT_PATTERNS:
            for path in folder.glob(pattern):
                path.unlink()


def run_tests(model: Path, tests: Dict[str, Path], out: Path, domain: Optional[Path], plots: bool) -> None:
    """`rasa test nlu` of one model on each language's test data, into <out>/<lang>/."""
    from rasa.core.agent import Agent
    from rasa.nlu.test import run_evaluation

    clear_reports(out)
    agent = Agent.load(model_path=str(model))

    async def evaluate_all() -> None:
        for lang, test_path in tests.items():
            print(f"evaluate_nlu: testing {lang} ({test_path})")
            await run_evaluation(
                str(test_path),
                agent.processor,
                output_directory=str(out / lang),
                successes=False,
                errors=True,
                disable_plotting=not plots,
                report_as_dict=True,
                domain_path=str(domain) if domain and domain.exists() else None,
            )

    asyncio.run(evaluate_all())


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
    product: Optional[EntityScore] = None  # the `product` entity by its extractor
    test_examples: int = 0  # the intent report's support: every test example


NO_METRICS = Metrics(None, None, None, [], [], [])


@dataclasses.dataclass(frozen=True)
class Thresholds:
    intent_en: float = 0.95
    intent: float = 0.90  # every language but English
    response: float = 0.90
    entity: float = 0.85
    product: float = 0.85
    min_test_examples: int = 20  # fewer: the language is reported, not gated

    def intent_for(self, language: str) -> float:
        return self.intent_en if language == DEFAULT_LANGUAGE else self.intent


@dataclasses.dataclass(frozen=True)
class Check:
    metric: str
    value: Optional[float]
    threshold: float
    language: str = DEFAULT_LANGUAGE
    gated: bool = True

    @property
    def met(self) -> bool:
        if self.threshold <= 0:
            return True  # the check is switched off
        return self.value is not None and self.value >= self.threshold

    @property
    def passed(self) -> bool:
        return self.met or not self.gated

    @property
    def result(self) -> str:
        if self.threshold <= 0:
            return "SKIP"
        if not self.gated:
            return "ok (not gated)" if self.met else "low (not gated)"
        return "PASS" if self.met else "FAIL"


@dataclasses.dataclass(frozen=True)
class LanguageResult:
    language: str
    metrics: Metrics
    checks: List[Check]
    test_examples: int
    gated: bool
    reason: str = ""  # why the language is not gated


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
    return sum((s.f1 or 0.0) * s.support for s in counted) / total


def read_metrics(out: Path, extractors: Optional[Dict[str, str]] = None, worst: int = 5) -> Metrics:
    """The metrics of the reports of one `rasa test nlu` run in the folder `out`."""
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
    product_extractor = extractors.get(PRODUCT_ENTITY, DEFAULT_ENTITY_EXTRACTORS[PRODUCT_ENTITY])
    product = next((s for s in scores if s.entity == PRODUCT_ENTITY), None)
    if product is None:
        product = entity_scores(entity_reports, {PRODUCT_ENTITY: product_extractor})[0]
    return Metrics(
        intent_accuracy=_accuracy(intent_report),
        response_accuracy=_accuracy(response_report),
        entity_f1=weighted_f1(scores),
        entities=scores,
        worst_intents=_worst(intent_report, worst),
        worst_responses=_worst(response_report, worst),
        product=product,
        test_examples=sum(int(row.get("support", 0)) for row in _labels(intent_report).values()),
    )


def _has_reports(folder: Path) -> bool:
    return any(folder.glob("*_report.json"))


def report_folders(out: Path) -> Dict[str, Path]:
    """Language -> the folder of its reports, <out>/<lang>/. Reports directly in <out>
    (from before the languages: one language) are English."""
    folders = {}
    if out.is_dir():
        for folder in out.iterdir():
            if folder.is_dir() and LANGUAGE_CODE.fullmatch(folder.name) and _has_reports(folder):
                folders[folder.name] = folder
    if not folders and out.is_dir() and _has_reports(out):
        folders[DEFAULT_LANGUAGE] = out
    return {lang: folders[lang] for lang in language_order(folders)}


def read_language_metrics(
    out: Path, languages: Optional[Sequence[str]] = None, extractors: Optional[Dict[str, str]] = None, worst: int = 5
) -> Dict[str, Metrics]:
    """Each language's metrics from its reports in <out>/<lang>/. `languages`: the
    languages of the data, reported even without reports (no test examples)."""
    folders = report_folders(out)
    every = language_order([*folders, *(languages or [])])
    return {lang: read_metrics(folders[lang], extractors, worst) if lang in folders else NO_METRICS for lang in every}


def checks(metrics: Metrics, thresholds: Thresholds = Thresholds(), language: str = DEFAULT_LANGUAGE,
           gated: bool = True) -> List[Check]:
    product = metrics.product
    product_label = f"{PRODUCT_ENTITY} entity F1" + (f" ({product.extractor})" if product else "")
    return [
        Check("intent accuracy", metrics.intent_accuracy, thresholds.intent_for(language), language, gated),
        Check("response selection accuracy (faq)", metrics.response_accuracy, thresholds.response, language, gated),
        Check(f"entity F1 ({len(metrics.entities)} entities, support-weighted)", metrics.entity_f1,
              thresholds.entity, language, gated),
        Check(product_label, product.f1 if product else None, thresholds.product, language, gated),
    ]


def evaluate(metrics: Dict[str, Metrics], thresholds: Thresholds = Thresholds(),
             test_examples: Optional[Dict[str, int]] = None) -> List[LanguageResult]:
    """Each language's checks; a language with fewer than thresholds.min_test_examples
    test examples is checked but not gated. `test_examples`: the counts of the split
    (else the intent reports' support)."""
    results = []
    for lang in language_order(metrics):
        count = (test_examples or {}).get(lang, metrics[lang].test_examples)
        gated = count >= thresholds.min_test_examples
        reason = "" if gated else f"fewer than {thresholds.min_test_examples} test examples: reported, not gated"
        results.append(LanguageResult(lang, metrics[lang], checks(metrics[lang], thresholds, lang, gated), count, gated, reason))
    return results


def passed(results: Sequence[LanguageResult]) -> bool:
    """Every gated check is met, and at least one language was gated."""
    return any(r.gated for r in results) and all(c.passed for r in results for c in r.checks)


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


def format_report(results: Sequence[LanguageResult]) -> str:
    """The table: one row per language and metric, each entity under the entity F1 (the
    product's with its threshold), then the most confused intents and faq answers of
    each language, and the verdict."""
    rows: List[Tuple[str, str, str, str, str]] = []  # language, metric, value, min, result
    for result in results:
        lang = result.language
        rows.append((lang, "test examples", str(result.test_examples), "", "gated" if result.gated else result.reason))
        product_check = result.checks[-1]
        product = result.metrics.product
        for check in result.checks[:-1]:
            rows.append((lang, check.metric, _number(check.value), f"{check.threshold:.3f}", check.result))
            if check.metric.startswith("entity F1"):
                for score in result.metrics.entities:
                    extra = f"support {score.support}" + (f"; {score.note}" if score.note else "")
                    label = f"  {score.entity} ({score.extractor})"
                    if product is not None and score == product:
                        rows.append((lang, label, _number(score.f1), f"{product_check.threshold:.3f}",
                                     f"{product_check.result}  {extra}"))
                    else:
                        rows.append((lang, label, _number(score.f1), "", extra))
        if product is None or product not in result.metrics.entities:
            extra = f"  support {product.support}" + (f"; {product.note}" if product.note else "") if product else ""
            rows.append((lang, product_check.metric, _number(product_check.value), f"{product_check.threshold:.3f}",
                         product_check.result + extra))
    lang_width = max(len("language"), *(len(r[0]) for r in rows))
    width = max(len(r[1]) for r in rows)
    lines = [f"{'language':<{lang_width}}  {'metric':<{width}}  {'value':>6}  {'min':>6}  result"]
    for lang, metric, value, threshold, outcome in rows:
        lines.append(f"{lang:<{lang_width}}  {metric:<{width}}  {value:>6}  {threshold:>6}  {outcome}".rstrip())
    for result in results:
        lines += _confusions(result.metrics.worst_intents, f"most confused intents ({result.language})")
        lines += _confusions(result.metrics.worst_responses, f"most confused faq answers ({result.language})")
    failed = [f"{c.language} {c.metric}" for r in results for c in r.checks if not c.passed]
    gated = [r.language for r in results if r.gated]
    not_gated = [r.language for r in results if not r.gated]
    lines.append("")
    if not gated:
        lines.append("FAIL: no language has enough test examples to be gated; nothing was checked")
    elif failed:
        lines.append("FAIL: " + "; ".join(failed))
    else:
        lines.append("PASS: every threshold is met (gated: " + ", ".join(gated)
                     + ("; not gated: " + ", ".join(not_gated) if not_gated else "") + ")")
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
    defaults = Thresholds()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data"),
                        help="training data directory (default data): English in data/nlu/*.yml, others in data/nlu/<lang>/")
    parser.add_argument("--config", type=Path, default=Path("config.yml"))
    parser.add_argument("--domain", type=Path, default=Path("domain.yml"))
    parser.add_argument("--fraction", type=_fraction, default=0.8, help="share of examples for training (0.8)")
    parser.add_argument("--seed", type=int, default=42, help="random seed of the split (42)")
    parser.add_argument("--out", type=Path, default=Path("results/nlu"), help="split and reports (results/nlu)")
    parser.add_argument("--cache", type=Path, default=default_cache(),
                        help="trained models ($SHOP_MODEL_CACHE, the machine's model cache; else var/test-models)")
    thresholds = parser.add_argument_group("thresholds, per language (0 switches a check off)")
    thresholds.add_argument("--min-intent-accuracy-en", type=float, default=defaults.intent_en,
                            help=f"intent accuracy of English ({defaults.intent_en})")
    thresholds.add_argument("--min-intent-accuracy", type=float, default=defaults.intent,
                            help=f"intent accuracy of every other language ({defaults.intent})")
    thresholds.add_argument("--min-response-accuracy", type=float, default=defaults.response,
                            help=f"faq response selection accuracy ({defaults.response})")
    thresholds.add_argument("--min-entity-f1", type=float, default=defaults.entity,
                            help=f"support-weighted F1 of the entities ({defaults.entity})")
    thresholds.add_argument("--min-product-f1", type=float, default=defaults.product,
                            help=f"F1 of the product entity ({defaults.product})")
    thresholds.add_argument("--min-test-examples", type=int, default=defaults.min_test_examples,
                            help=f"a language with fewer test examples is reported, not gated ({defaults.min_test_examples})")
    parser.add_argument("--entity", type=_entity, action="append", default=[], metavar="ENTITY=EXTRACTOR",
                        help="entity and the extractor responsible for it; replaces the defaults "
                        + ", ".join(f"{e}={x}" for e, x in DEFAULT_ENTITY_EXTRACTORS.items()))
    parser.add_argument("--worst", type=int, default=5, help="how many confused intents to show per language (5)")
    parser.add_argument("--plots", action="store_true", help="also draw confusion matrices and histograms")
    parser.add_argument("--verbose", action="store_true", help="Rasa's INFO logs while training and testing")
    parser.add_argument("--retrain", action="store_true", help="train even if a cached model matches")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--split-only", action="store_true", help="write the split and stop")
    mode.add_argument("--train-only", action="store_true",
                      help="write the split, train the model unless cached, and stop (`make test` trains it "
                           "beside the project model)")
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


def _log(message: str) -> None:
    print(f"evaluate_nlu: {message}", file=sys.stderr)


def prepare_split(args: argparse.Namespace) -> Tuple[Path, Dict[str, Path], Dict[str, int], str]:
    """Step 1: (training file, test file per language, test examples per language, fingerprint)."""
    full, languages = load_nlu_data_with_languages(args.data)
    train, test = split(full, args.fraction, args.seed)
    honest = move_near_duplicates(full, train, test, languages)
    parts = language_test_parts(full, honest.test, languages)
    train_path, test_path, train_yaml = write_split(honest.train, honest.test, args.out)
    tests = write_language_tests(parts, args.out)
    key = fingerprint(train_yaml, args.config, args.domain if args.domain.exists() else None)
    counts = {lang: len(part.training_examples) for lang, part in parts.items()}
    _log(
        f"split {len(honest.train.training_examples)} training / {len(honest.test.training_examples)} test examples "
        f"(fraction {args.fraction}, seed {args.seed}) -> {train_path}, {test_path}; fingerprint {key}"
    )
    _log(f"moved {len(honest.moved)} test examples into training: near-duplicates of training examples")
    if honest.restored:
        _log(f"put {len(honest.restored)} examples of near-duplicate texts into test, so that every intent "
             "keeps test examples in each language")
    for intent, lang in honest.without_test:
        _log(f"warning: {intent} ({lang}) has no test example left: all of them are near-duplicates of "
             "its training examples")
    shared = sum(1 for langs in languages.values() if len(langs) > 1)
    if shared:
        _log(f"{shared} examples are written identically in several languages; each of them counts in all")
    _log("test examples per language: " + ", ".join(f"{lang} {n}" for lang, n in counts.items())
         + " -> " + ", ".join(str(p) for p in tests.values()))
    return train_path, tests, counts, key


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not args.check_only:
        configure_logging(args.verbose)
    extractors = dict(args.entity) if args.entity else dict(DEFAULT_ENTITY_EXTRACTORS)
    thresholds = Thresholds(
        intent_en=args.min_intent_accuracy_en, intent=args.min_intent_accuracy, response=args.min_response_accuracy,
        entity=args.min_entity_f1, product=args.min_product_f1, min_test_examples=args.min_test_examples,
    )
    started = time.monotonic()
    counts: Dict[str, int] = {}
    try:
        if not args.check_only:
            if not args.config.is_file():
                raise EvaluationError(f"config file {args.config} not found")
            domain = args.domain if args.domain.exists() else None
            train_path, tests, counts, key = prepare_split(args)
            if args.split_only:
                return 0
            # Rasa prints progress to stdout; stdout is kept for the result table.
            with contextlib.redirect_stdout(sys.stderr):
                model, cached = train_or_reuse(train_path, args.config, domain, args.cache, key, args.retrain)
                trained_at = time.monotonic()
                how = "cached" if cached else f"trained in {trained_at - started:.0f} s"
                print(f"evaluate_nlu: model {model} ({how})")
                if args.train_only:
                    return 0
                run_tests(model, tests, args.out, domain, args.plots)
            _log(f"tested in {time.monotonic() - trained_at:.0f} s; reports in "
                 + ", ".join(str(args.out / lang) for lang in tests))
        elif not report_folders(args.out):
            raise EvaluationError(f"no reports in {args.out}/<lang>/ (nor in {args.out})")
        metrics = read_language_metrics(args.out, list(counts), extractors, args.worst)
    except EvaluationError as error:
        _log(str(error))
        return 2
    results = evaluate(metrics, thresholds, counts)
    print(format_report(results))
    return 0 if passed(results) else 1


if __name__ == "__main__":
    sys.exit(main())
