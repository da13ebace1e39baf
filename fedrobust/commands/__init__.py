"""The ``fedrobust`` sub-commands' handlers; :mod:`fedrobust.cli` builds the parser.

Each ``cmd_*`` handler takes the parsed arguments and returns the exit code. Heavy
imports stay inside the handlers so that ``fedrobust --help`` and input errors answer at
once.
"""
