"""`python -m rasa_plugins.quiet_start run ...`: Rasa's command line (`rasa run`,
`rasa run actions`, any other) without the deprecation warnings its dependencies print
about themselves at start-up (TensorFlow/JAX, pkg_resources, pyparsing, SQLAlchemy,
distutils...): `make run` starts the bot and the action server this way (Procfiles).

Why not only PYTHONWARNINGS (scripts/env.sh sets it for everything else): Sanic adds
`filterwarnings("once", DeprecationWarning)` when it is imported, in front of the
interpreter's filters, so under `rasa` every deprecation warning shows once anyway.
Here Sanic is imported first and the ignore filters go in front of its own. Warnings
of other kinds, log lines and errors are untouched; `PYTHONWARNINGS=default` (or
running `.venv/bin/rasa` itself) shows everything again.
"""
import logging
import os
import sys
import warnings

QUIET = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


def quiet() -> None:
    import sanic  # noqa: F401  (its import adds the filter ours must come before)

    if os.environ.get("PYTHONWARNINGS", "").strip().lower() in ("default", "always"):
        return
    for category in QUIET:
        warnings.filterwarnings("ignore", category=category)
    if sys.argv[1:3] == ["run", "actions"] and not _verbose():
        # One "Registered function for 'action_x'." line per action (16) at every start:
        # what the action server serves is in actions/; errors still show.
        logging.getLogger("rasa_sdk.executor").setLevel(logging.WARNING)
    if sys.argv[1:2] == ["run"] and sys.argv[2:3] != ["actions"]:
        # The Rasa server imports matplotlib, whose import makes pyparsing warn about
        # deprecated calls; pyparsing's warnings are UserWarnings too, which Rasa then
        # shows once whatever the filters say. Imported here, they are ignored.
        import matplotlib.pyplot  # noqa: F401


def keep_info_lines() -> None:
    """The intent classifier's model format: importing skops walks every sklearn module,
    numpy.distutils among them, which turns the root logger (setuptools' distutils log)
    into its own class, printing the root's records plainly, and sets it to WARNING.
    During the model load that hid every INFO line after it: "Rasa server is up and
    running." (logged on the root logger) and the channel's one line per processed
    event. Imported here, with the root logger put back as it was, before Rasa sets up
    logging, it changes nothing."""
    if sys.argv[1:2] == ["run"] and sys.argv[2:3] != ["actions"]:
        root = logging.getLogger()
        kind, level, handlers = root.__class__, root.level, root.handlers[:]
        import skops.io  # noqa: F401

        root.__class__ = kind
        root.setLevel(level)
        root.handlers[:] = handlers


def _verbose() -> bool:
    """`-v`/`--verbose`/`-vv`/`--debug` on the command line, or LOG_LEVEL=DEBUG."""
    flags = {"-v", "--verbose", "-vv", "--debug"}
    return bool(flags & set(sys.argv[1:])) or os.environ.get("LOG_LEVEL", "").upper() == "DEBUG"


def main() -> None:
    quiet()
    keep_info_lines()
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *sys.argv[1:]]
    rasa_main()


if __name__ == "__main__":
    main()
