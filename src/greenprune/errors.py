"""Base class of the errors greenprune raises for bad input; the CLI prints them as one line."""


class GreenpruneError(Exception):
    """An input (model spec, file, option) greenprune cannot use; the message names it."""


class OptionError(GreenpruneError, ValueError):
    """A numeric option outside its range (a zero batch size, a zero token budget); the message names it."""


def require_positive(**values: int | None) -> None:
    """Raise OptionError for the first of `values` (name=value) that is set but not a positive integer.

    Zero or negative sizes do not fail loudly further down: a zero token budget scores empty completions, a zero
    max length truncates every input to nothing. Library entry points call this so the API refuses them too.
    """
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise OptionError(f"{name} must be a positive integer, got {value!r}")
