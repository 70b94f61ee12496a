"""Which errors are the user's to fix, as opposed to bugs.

The command line turns a user error into one line and exit status 2; anything else is a bug
and is shown with its traceback (exit status 1). New user-facing errors derive from
:class:`UserError`; a few older ones are recognised by name below until they derive from it.
"""

from __future__ import annotations

import sys


class UserError(Exception):
    """Bad settings or inputs the user named; the message says what to fix."""


class InputNotFoundError(UserError, FileNotFoundError):
    """An input the user named (a file, a feature set, a run) does not exist."""


# (module, class) of user errors that predate UserError. Looked up only in modules already
# imported: an exception cannot be an instance of a class whose module was never loaded, and
# this keeps `lssed` from importing torch or pyarrow just to classify an error.
_LEGACY_USER_ERRORS = (
    ("lssed.storage", "StorageError"),
    ("lssed.corpora.base", "CorpusError"),
    ("lssed.preprocess.stage", "ManifestError"),
    ("lssed.models.checkpoints", "CheckpointError"),
)


def is_user_error(exc: BaseException) -> bool:
    """True for :class:`UserError` and the legacy user errors listed above.

    A plain ``FileNotFoundError`` counts only when lssed raised it with a message of its own
    (``errno`` unset) about an input; one from the operating system (``errno`` set) may be a
    missing internal file, i.e. a bug, and keeps its traceback.
    """
    if isinstance(exc, UserError):
        return True
    if isinstance(exc, FileNotFoundError) and exc.errno is None:
        return True
    for module, name in _LEGACY_USER_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False
