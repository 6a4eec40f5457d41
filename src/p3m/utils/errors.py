"""The exit-code contract of every entry point, and the error type that carries a user's mistake.

- 0: done.
- 1: some inputs failed, the rest are done (predict, anonymize, prepare: the failures are listed in the log).
- 2: user error: nothing was done; one clear message, no traceback (:class:`UserError`).
- 130: interrupted (Ctrl-C); 143: terminated (SIGTERM, e.g. SLURM pre-emption).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_PARTIAL_FAILURE = 1
EXIT_USER_ERROR = 2  #: a user error: one message naming the setting or file and the fix, no traceback
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class UserError(Exception):
    """A mistake in the user's input or configuration that the user can fix.

    The message names the file or config key and the fix; entry points print it once, without a
    traceback, and exit with :data:`EXIT_USER_ERROR`. Bugs keep raising other exceptions (and show
    their traceback).
    """


class SettingError(UserError, ValueError):
    """A setting whose value the entry point cannot use; the message names the key and the choices."""


class MissingInputError(UserError, FileNotFoundError):
    """A file or folder the user named (or that a setting implies) does not exist."""
