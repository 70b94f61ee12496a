"""Which errors are the user's to fix, as opposed to bugs.

The command line turns a user error into one line and exit status 2; anything else is a bug
and is shown with its traceback (exit status 1). New user-facing errors derive from
:class:`UserError`.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad settings or inputs the user named; the message says what to fix."""


class InputNotFoundError(UserError, FileNotFoundError):
    """An input the user named (a file, a feature set, a run) does not exist."""


def is_user_error(exc: BaseException) -> bool:
    """True for :class:`UserError` (StorageError, CorpusError, ManifestError, CheckpointError, ConfigError
    derive from it).

    A plain ``FileNotFoundError`` counts only when lssed raised it with a message of its own
    (``errno`` unset) about an input; one from the operating system (``errno`` set) may be a
    missing internal file, i.e. a bug, and keeps its traceback.
    """
    if isinstance(exc, UserError):
        return True
    if isinstance(exc, FileNotFoundError) and exc.errno is None:
        return True
    return False
