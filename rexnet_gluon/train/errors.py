"""The two ways a run fails on purpose, each with its exit status."""

__all__ = ['TrainingError', 'NonFiniteError']


class TrainingError(Exception):
    """A configuration or data problem, reported as one clear message (exit status 2)."""
    exit_code = 2


class NonFiniteError(TrainingError):
    """The loss or the weights became NaN/inf: the run stops, the last good checkpoint is kept (exit status 1)."""
    exit_code = 1
