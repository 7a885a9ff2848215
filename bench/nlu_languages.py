"""NLU parse latency with seven languages against an English-only model, on the same
machine and messages, and the time to train each (issue: bar <= 1.3x).

    python bench/nlu_languages.py [--model models/shop-x.tar.gz] [--english-model m.tar.gz]
        [--rounds 5]

Without --english-model, an English-only NLU model is trained first (the project's
config and English data: data/nlu/*.yml, no data/nlu/<lang>/, no other languages in the
generated catalog) and its training time is printed; without --model the project's
(scripts/train-if-needed). Both models parse the same English messages, interleaved in
rounds so drift hits both; the seven-language model also parses each language's messages.
Prints p50/p99 per model and language, the ratio, and the process's peak memory.
"""
import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MESSAGES: Dict[str, List[str]] = {
    "en": ["hi there", "how much are the merino hiking socks?", "do you have the zip hoodie in M?", "where is my order LT-10421",
           "how much is shipping to austria", "can i talk to a person", "what is the bralette made of", "do you sell gift cards?"],
    "de": ["Hallo", "Was kosten die Merinosocken?", "gibt es den Zip-Hoodie in M?", "Wo ist meine Bestellung LT-10421?",
           "was kostet der Versand nach Österreich", "ich möchte mit einem Menschen sprechen"],
    "ru": ["здравствуйте", "сколько стоят носки из мериноса?", "есть худи на молнии размера M?", "где мой заказ LT-10421?",
           "сколько стоит доставка", "хочу поговорить с человеком"],
    "cs": ["dobrý den", "kolik stojí merino ponožky?", "máte mikinu na zip ve velikosti M?", "kde je moje objednávka LT-10421?",
           "kolik stojí poštovné", "chci mluvit s člověkem"],
    "ka": ["გამარჯობა", "მერინოს წინდები რა ღირს?", "M ზომა გაქვთ?", "სად არის ჩემი შეკვეთა LT-10421?", "მიწოდება რა ღირს?",
           "ოპერატორთან დამაკავშირეთ"],
    "hy": ["բարև Ձեզ", "մերինոսե գուլպաները ինչ արժեն", "M չափս ունեք?", "որտեղ է իմ պատվերը LT-10421", "առաքումը ինչ արժե",
           "մարդու հետ եմ ուզում խոսել"],
    "zh": ["你好", "美利奴袜多少钱", "拉链卫衣有M码吗", "我的订单LT-10421到哪了", "运费多少", "转人工"],
}


def train_english_only(out: Path) -> Path:
    """The project's NLU on English only: a copy of data/ without the other languages."""
    work = Path(tempfile.mkdtemp(prefix="nlu-en-"))
    shutil.copytree(ROOT / "data", work / "data", ignore=shutil.ignore_patterns(*[lang for lang in MESSAGES if lang != "en"]))
    subprocess.run([sys.executable, str(ROOT / "scripts" / "generate_catalog_nlu.py"), "--locales", str(work / "none"),
                    "--output", str(work / "data" / "nlu" / "catalog.yml")], check=True, capture_output=True)
    started = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "rasa"), "train", "nlu", "--config", str(ROOT / "config.yml"),
                    "--nlu", str(work / "data"), "--out", str(out), "--fixed-model-name", "nlu-english-only"],
                   check=True, cwd=ROOT, capture_output=True)
    print(f"training the English-only NLU model: {time.perf_counter() - started:.0f} s")
    return out / "nlu-english-only.tar.gz"


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def parse_times(agent, texts: List[str]) -> List[float]:
    times = []
    for text in texts:
        started = time.perf_counter()
        await agent.parse_message(text)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def main(args: argparse.Namespace) -> None:
    from rasa.core.agent import Agent

    model = args.model or subprocess.run([str(ROOT / "scripts" / "train-if-needed")], cwd=ROOT, capture_output=True,
                                         text=True, check=True).stdout.strip().splitlines()[-1]
    english_model = args.english_model or str(train_english_only(Path(tempfile.mkdtemp(prefix="nlu-models-"))))
    seven = Agent.load(str(ROOT / model) if not os.path.isabs(model) else model)
    english = Agent.load(english_model)
    for agent in (seven, english):  # warm up (first parse builds caches)
        await parse_times(agent, MESSAGES["en"])
    results: Dict[str, List[float]] = {"seven languages, English messages": [], "English only, English messages": []}
    for _ in range(args.rounds):
        results["seven languages, English messages"] += await parse_times(seven, MESSAGES["en"] * 5)
        results["English only, English messages"] += await parse_times(english, MESSAGES["en"] * 5)
        for lang, texts in MESSAGES.items():
            results.setdefault(f"seven languages, {lang}", []).extend(await parse_times(seven, texts * 5))
    for name, values in results.items():
        print(f"{name:<40} p50 {statistics.median(values):6.1f} ms   p99 {percentile(values, 0.99):6.1f} ms   n={len(values)}")
    a, b = results["seven languages, English messages"], results["English only, English messages"]
    print(f"ratio seven/English-only: p50 {statistics.median(a) / statistics.median(b):.2f}x   "
          f"p99 {percentile(a, 0.99) / percentile(b, 0.99):.2f}x   (bar <= 1.3x)")
    print(f"peak memory of this process (both models loaded): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="the seven-language model (default: the project's, trained if needed)")
    parser.add_argument("--english-model", help="an English-only model (default: trained first)")
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
