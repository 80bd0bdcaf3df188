"""Issue 15's acceptance on the real model: `greenprune structure qwen2.5-coder-0.5b --vocab stdlib --ffn 0.2`
writes a folder plain transformers reloads (fresh process, no greenprune), tied, with the parameter count the
command reported."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from greenprune.cli import app

from .conftest import reload_plain


@pytest.mark.slow
def test_structure_cli_on_qwen_writes_a_tied_plain_checkpoint(tmp_path):
    out = tmp_path / "qwen-pruned"
    result = CliRunner().invoke(app, ["structure", "qwen2.5-coder-0.5b", "--vocab", "stdlib", "--ffn", "0.2",
                                      "--no-measure", "--out", str(out)])
    assert result.exit_code == 0, result.output
    reported = re.search(r"wrote .*?:\s+([\d,]+)\s+→\s+([\d,]+)\s+parameters", result.output, flags=re.S)
    assert reported, result.output
    before, after = (int(g.replace(",", "")) for g in reported.groups())
    assert before == 494_032_768 and after < 0.7 * before  # vocab + 20% of the FFN: over 30% removed
    plain = reload_plain(out, [[0, 1, 2, 3]])
    assert plain["params"] == after
    assert plain["config"]["tie_word_embeddings"] is True
    assert plain["config"]["intermediate_size"] < 4864 and plain["config"]["vocab_size"] < 151_936
