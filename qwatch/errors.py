"""One root for every error the project raises on purpose, and the exit code each stands for.

Stages raise what they mean (a lockfile that does not parse, a feed that is stale, a sink that stopped
acknowledging); only the app turns an error into an exit code, by reading ``exit_code``. Anything that is not a
:class:`QwatchError` is a bug: the app logs its traceback and exits 1, instead of passing a stray ``ValueError`` from
deep inside off as the user's mistake.
"""

from __future__ import annotations


class QwatchError(Exception):
    """Root of the project's errors; the message is one line a user can act on."""

    exit_code = 1
    """1: the run failed (upstream, broker, disk); retrying after the cause is fixed is safe."""


class UsageError(QwatchError, ValueError):
    """A problem the user can fix in the command line, a setting or a file they gave.

    Also a ``ValueError``: a value the user gave was wrong, and argparse ``type=`` converters and the callers that
    validate values catch ``ValueError``."""

    exit_code = 2
