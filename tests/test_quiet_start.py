"""rasa_plugins.quiet_start keeps the Rasa server's INFO lines: loading the project model
imports skops (the intent classifier's format), which imports numpy.distutils, whose
setuptools log sets the root logger to WARNING; "Rasa server is up and running." and
the channel's per-event lines vanished from `make run`. Fresh interpreters, as the
import happens once per process."""
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = """
import logging, sys
sys.argv = ["rasa", "run"]
from rasa_plugins import quiet_start
if {guarded}:
    quiet_start.keep_info_lines()
logging.getLogger().setLevel(logging.INFO)  # what Rasa's logging set-up does
import skops.io  # what the classifier's load imports, after that
print(logging.getLogger().level)
"""


def root_level_after_the_model_load(guarded: bool) -> int:
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", SCRIPT.format(guarded=guarded)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    return int(result.stdout.strip().splitlines()[-1])


def test_the_root_logger_stays_at_info_through_the_model_load():
    assert root_level_after_the_model_load(guarded=False) == 30  # what happened: WARNING
    assert root_level_after_the_model_load(guarded=True) == 20
