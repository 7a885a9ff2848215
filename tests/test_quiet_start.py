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
handlers = logging.getLogger().handlers[:]
import skops.io  # what the classifier's load imports, after that
print(logging.getLogger().handlers == handlers, type(logging.getLogger()).__name__)
print(logging.getLogger().level)
"""


def root_after_the_model_load(guarded: bool) -> str:
    """The root logger's level after the import, and whether its handlers are Rasa's."""
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", SCRIPT.format(guarded=guarded)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    return " ".join(result.stdout.split()[-3:])


def test_the_root_logger_stays_at_info_through_the_model_load():
    # What happened: numpy.distutils' own class (printing root lines plainly), at WARNING.
    assert root_after_the_model_load(guarded=False) == "True Log 30"
    assert root_after_the_model_load(guarded=True) == "True RootLogger 20"


def test_the_guard_leaves_the_root_logger_as_it_found_it():
    """Before Rasa's logging set-up: no handlers, WARNING, Python's own class."""
    script = ("import logging, sys\nsys.argv = ['rasa', 'run']\nfrom rasa_plugins import quiet_start\n"
              "quiet_start.keep_info_lines()\nr = logging.getLogger()\nprint(r.handlers, type(r).__name__, r.level)")
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", script], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.split() == ["[]", "RootLogger", "30"]
