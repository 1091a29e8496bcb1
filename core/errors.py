"""One base for every error a user can act on.

Pages and the CLI show a :class:`ScreeningError` as one line; anything else is a bug and is
logged with its traceback (never shown).
"""

from __future__ import annotations


class ScreeningError(Exception):
    """Something the user can fix or must be told about, in one clear sentence."""


class FileError(ScreeningError):
    """A problem with an uploaded or given file as a whole (not CSV, empty, missing columns...)."""


class BundleError(ScreeningError):
    """A model version is missing, damaged, unsigned or tampered with."""


class VersionMissing(BundleError):
    """No model version of that id is on this installation (as opposed to one that fails verification)."""


class PermissionDenied(ScreeningError):
    """The signed-in user's role does not allow this action."""


class BadRequest(ScreeningError):
    """An action was asked for with values that cannot work (unknown version, empty reason...)."""


class StorageError(ScreeningError):
    """The batch record cannot be reached or is damaged; nothing was lost or recreated."""
