"""Errors a user can act on: each message says what is wrong and what to do."""


class AimError(Exception):
    """Base class for errors reported to the user as one line, without a traceback."""


class ConfigError(AimError):
    """params.yaml (or a command-line override) is invalid."""


class DataError(AimError):
    """Input data is missing, empty, malformed beyond use, or does not match its schema."""


class ModelError(AimError):
    """A model file is missing, corrupt or does not match its configuration."""


class ValidationFailed(DataError):
    """A data batch failed its Great Expectations suite; it was quarantined and nothing ran on it."""
