"""The error the deployment commands (``predict``, ``export``) raise for bad input."""

__all__ = ['UsageError']


class UsageError(Exception):
    """Bad input to a command: printed as ``error: ...``, exit status 2."""
