"""Exceptions that carry a message meant for the person at the keyboard."""


class CbirError(Exception):
    """An error caused by input or environment, with a message saying what to do.

    The command line prints the message on one line and exits with status 2; the web
    layer turns it into a 4xx response. Anything else is a bug and keeps its traceback.
    """


class DatasetError(CbirError):
    """A dataset path is missing, unreadable or not in a layout we know."""


class ConfigError(CbirError):
    """A setting (environment variable or flag) has a value we cannot use."""
