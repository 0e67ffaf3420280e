"""Errors that mean 'this invocation cannot work': reported as one line, exit code 2, no traceback."""


class UserError(Exception):
    """A bad invocation, input or configuration; the message is the one-line cause shown to the user."""
