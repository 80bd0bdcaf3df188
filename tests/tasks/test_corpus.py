"""The stdlib corpus: real functions, deterministic for a seed, split by source file."""

from __future__ import annotations

import ast

from greenprune.tasks.corpus import all_stdlib_functions, split_by_file, stdlib_dir, stdlib_functions


def test_functions_are_real_stdlib_code():
    functions = all_stdlib_functions()
    assert len(functions) > 1000
    fn = next(f for f in functions if f.docstring and f.body)
    assert (stdlib_dir() / fn.file).is_file()
    assert fn.name in fn.signature and fn.source.lstrip().startswith(("def ", "async def "))
    assert fn.source in "\n".join(line.strip() for line in (stdlib_dir() / fn.file).read_text().splitlines()) or \
        fn.source.splitlines()[0].strip() in (stdlib_dir() / fn.file).read_text()
    ast.parse(fn.body)


def test_same_seed_same_split_and_no_file_in_two_splits():
    a = stdlib_functions(seed=3)
    b = stdlib_functions(seed=3)
    c = stdlib_functions(seed=4)
    assert [f.qualname for f in a.test] == [f.qualname for f in b.test]
    assert [f.qualname for f in a.test] != [f.qualname for f in c.test]
    files = [{f.file for f in part} for _, part in a.items()]
    assert not files[0] & files[1] and not files[0] & files[2] and not files[1] & files[2]
    total = sum(len(p) for _, p in a.items())
    assert 0.7 < len(a.train) / total < 0.9  # about the requested share, with whole files


def test_split_by_file_respects_zero_fraction():
    functions = all_stdlib_functions()[:500]
    splits = split_by_file(functions, seed=0, fractions=(1.0, 0.0, 1.0))
    assert splits.valid == [] and splits.train and splits.test
