"""Smoke test of the fault, soak and campaign benchmarks (bench/): their options and the
pure functions that turn what they saw into the numbers they print. The benchmarks
themselves run the real stack for minutes and are not part of the test suite."""
import json
import os
import time
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import campaign, faults, soak, stack


def test_options_and_their_defaults():
    assert faults.parse_args([]).rounds == 20 and faults.parse_args([]).customers == 30
    assert faults.parse_args(["--rounds", "5"]).rounds == 5
    assert soak.parse_args([]).minutes == 10 and soak.parse_args([]).rate == 20 and soak.parse_args([]).customers == 500
    assert soak.parse_args(["--minutes", "3"]).minutes == 3
    args = campaign.parse_args([])
    assert (args.recipients, args.rates, args.limit) == (100_000, [80.0, 1000.0], 2000)
    assert campaign.parse_args(["--recipients", "5000", "--rates", "80"]).rates == [80.0]
    for parse, bad in ((faults.parse_args, ["--rounds", "0"]), (soak.parse_args, ["--minutes", "0"]),
                       (campaign.parse_args, ["--rates", "1001"]), (faults.parse_args, ["--targets", "actions"])):
        with pytest.raises(SystemExit):
            parse(bad)


def test_faults_count_a_repeated_body_as_a_duplicate_and_summarise_rounds():
    assert faults.duplicates_of(["a", "b", "c"]) == 0
    assert faults.duplicates_of(["a", "b", "a", "a"]) == 2
    rounds = [faults.RoundResult("rasa", 1.0, 30, 30, 0, 0, 1, 40.0, 35.0),
              faults.RoundResult("writer", 2.0, 30, 29, 2, 1, 0, 2.0)]
    lines = "\n".join(faults.summarise(rounds))
    assert "duplicates: 2" in lines and "rounds with any: 1" in lines and "lost: 1" in lines
    assert "max 40.0 s" in lines and "rasa 1, writer 1" in lines
    assert faults.summarise([]) == ["no rounds"]


def test_soak_counts_messages_beyond_what_each_customer_should_get():
    assert soak.duplicates({"a": 2, "b": 1}, {"a": 2, "b": 3, "calibration": 5}) == 2
    assert soak.duplicates({"a": 2}, {}) == 0  # missing answers are lost, not duplicates
    tally = soak.Tally(acks=[1.0, 2.0, 30.0], e2e=[100.0, 200.0], codes=Counter({200: 3, 503: 1}), messages=3)
    lines = "\n".join(soak.summarise(tally, 0, 60))
    assert "5xx 1" in lines and "duplicates 0" in lines and "p99 30.0 ms" in lines


def test_odd_shapes_are_valid_json_of_shapes_meta_does_not_document():
    raw = soak.odd_shapes()
    assert b"[" * 5000 + b"]" * 5000 in raw  # valid JSON nested 5000 deep (Python's json gives up at ~1000)
    shapes = [json.loads(r) for r in raw if len(r) < 5000]  # each one parses: the channel must answer 200
    assert {"object": "whatsapp_business_account", "entry": "not a list"} in shapes and None in shapes
    assert not any(isinstance(s, dict) and s.get("entry") and isinstance(s["entry"], list)
                   and all(isinstance(e, dict) and e.get("changes") for e in s["entry"])
                   and any("messages" in (c.get("value") or {}) and all((m or {}).get("id") for m in c["value"]["messages"])
                           for e in s["entry"] for c in e["changes"]) for s in shapes)


def brute_force(sends, window):
    return max((len({who for t, who in sends if start <= t < start + window}) for start, _ in sends), default=0)


@given(st.lists(st.tuples(st.integers(0, 300), st.sampled_from("abcdefgh")), max_size=40), st.integers(1, 100))
def test_the_most_unique_users_in_a_moving_window(sends, window):
    assert campaign.max_unique_in_window([(float(t), w) for t, w in sends], float(window)) == brute_force(sends, window)


def test_rates_and_the_comparison_of_statistics():
    assert campaign.achieved_rate([10.0, 10.5, 11.0]) == 2.0
    assert campaign.achieved_rate([5.0]) == 0.0
    assert campaign.per_interval([0.0, 1.0, 12.0, 35.0], 10) == [2, 1, 0, 1]
    lines = campaign.compare({"sends": 3, "sent": 3, "delivered": 2, "read": 1, "priced": 2},
                             {"sends": 3, "sent": 3, "delivered": 2, "read": 2, "priced": 2})
    assert [line.split()[-1] for line in lines] == ["equal", "equal", "equal", "DIFFERENT", "equal"]


def test_ack_p99_per_tenth_of_a_run_shows_where_latency_grew():
    acks = [1.0] * 900 + [50.0] * 100  # slow only in the last tenth
    assert campaign.p99_per_part(acks) == [1.0] * 9 + [50.0]
    assert campaign.p99_per_part([3.0, 1.0]) == [3.0, 1.0]  # fewer values than parts: one slice each
    assert campaign.p99_per_part([]) == []


def test_the_database_files_whose_size_the_campaign_bench_prints(tmp_path):
    files = campaign.database_files(f"sqlite:///{tmp_path / 'shop.db'}")
    assert files == {"db": tmp_path / "shop.db", "wal": tmp_path / "shop.db-wal"}
    assert campaign.database_files("postgresql://127.0.0.1/test") == {}
    (tmp_path / "shop.db").write_bytes(b"x" * 2**20)
    sampler = stack.RssSampler(dict, files=files)
    assert sampler.file_sizes() == "  db 1.0 MiB"  # no log yet: not shown


def test_memory_slope_per_minute():
    assert stack.slope_per_minute([(0, 100.0), (30, 101.0), (60, 102.0)]) == pytest.approx(2.0)
    assert stack.slope_per_minute([(0, 100.0)]) == 0.0
    assert stack.slope_per_minute([(0, 100.0), (60, 100.0), (120, 100.0)]) == 0.0


def test_cpu_time_of_a_process_and_its_share_of_a_core():
    before, started = stack.cpu_seconds(os.getpid()), time.process_time()
    while time.process_time() - started < 0.3:  # work on this process's own CPU clock
        sum(range(1000))
    assert stack.cpu_seconds(os.getpid()) - before >= 0.2
    assert stack.cpu_shares({"a": 1.0, "b": 2.0}, {"a": 2.0, "b": 2.5, "new": 9.0}, 2.0) == "a 0.50  b 0.25"
