"""Base class of the errors greenprune raises for bad input; the CLI prints them as one line."""


class GreenpruneError(Exception):
    """An input (model spec, file, option) greenprune cannot use; the message names it."""
