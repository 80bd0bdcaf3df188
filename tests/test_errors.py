from __future__ import annotations

import pytest

from greenprune.errors import GreenpruneError, OptionError, require_positive


def test_require_positive_names_the_first_bad_value():
    require_positive(batch_size=1, max_length=None)  # None: not set, nothing to check
    with pytest.raises(OptionError, match="max_length must be a positive integer, got 0"):
        require_positive(batch_size=2, max_length=0, seq_len=-1)
    for bad in (-3, 1.5, True, "8"):
        with pytest.raises(GreenpruneError, match=f"got {bad!r}"):
            require_positive(samples=bad)
