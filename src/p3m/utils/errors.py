"""The exit-code contract of every entry point, and the error type that carries a user's mistake.

- 0: done.
- 1: some inputs failed, the rest are done (predict, anonymize, prepare: the failures are listed in the log).
- 2: user error: nothing was done; one clear message, no traceback (:class:`UserError`).
- 130: interrupted (Ctrl-C); 143: terminated (SIGTERM, e.g. SLURM pre-emption).
"""

from __future__ import annotations

import re

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


class MissingDependencyError(UserError, ImportError):
    """An optional package a feature needs is not installed; the message gives the install command."""


# How torch re-raises an exception of a DataLoader worker in the main process (torch/_utils.py,
# ExceptionWrapper): the type if it takes one message argument, else RuntimeError, with the worker's
# formatted traceback as the message.
_WORKER_MESSAGE = re.compile(r"Caught (?P<name>\w+) in DataLoader worker process \d+\.\nOriginal Traceback")


def _subclasses(cls: type) -> list[type]:
    found = [cls]
    child: type
    for child in cls.__subclasses__():
        found.extend(_subclasses(child))
    return found


def user_error_from_worker(err: BaseException) -> UserError | None:
    """The :class:`UserError` a DataLoader worker raised, rebuilt from what torch re-raised for it.

    A worker's exception reaches the main process as text: its type name and formatted traceback.
    When the type is a :class:`UserError`, its message (the traceback's last entry) is what the
    user must see, once, without the worker's traceback; other errors stay bugs (None).
    """
    found = _WORKER_MESSAGE.match(str(err))
    if found is None:
        return None
    name = found["name"]
    if not any(cls.__name__ == name for cls in _subclasses(UserError)):
        return None
    # the traceback ends with "<module>.<Name>: <message>", possibly over several lines
    heads = list(re.finditer(rf"^(?:[\w.]+\.)?{name}: ", str(err), flags=re.MULTILINE))
    return UserError(str(err)[heads[-1].end() :].strip() if heads else str(err))
