"""The errors conch reports to its user: one line each, exit status 1; and warnings."""

import posix


def warn(msg):
    """Tell the user something went on despite a problem (runc's logrus warnings). The
    command line replaces this with its logger (a logrus line on stderr, or a line in
    --log); a library caller gets it on stderr. Call it as errors.warn(...)."""
    posix.write(2, f"conch: warning: {msg}\n".encode())


class ConchError(Exception):
    """An error whose str() is the whole message the user sees."""


def __getattr__(name):
    """ConfigError and NotExist, made on first use (`from .errors import ConfigError`
    or errors.NotExist): a class statement costs 0.06M instructions, and `state`,
    `list` or `kill` never build a config."""
    if name == "ConfigError":
        class ConfigError(ConchError):
            """A config.json (or process.json) field is wrong; the message names it."""

            def __init__(self, field, msg):
                super().__init__(f"{field}: {msg}" if field else msg)
                self.field = field
        cls = ConfigError
    elif name == "NotExist":
        class NotExist(ConchError):
            def __init__(self):
                super().__init__("container does not exist")
        cls = NotExist
    else:
        raise AttributeError(f"module 'conch.errors' has no attribute '{name}'")
    cls.__module__, cls.__qualname__ = __name__, name
    globals()[name] = cls
    return cls


def describe(value):
    """How a JSON value reads in an error: strings quoted, containers abbreviated."""
    if isinstance(value, str):
        v = value if len(value) <= 40 else value[:37] + "..."
        return '"' + v.replace('"', '\\"') + '"'
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return str(value)
