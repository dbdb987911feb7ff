"""The mutation catalogue stays well-formed, and a mutant whose code moved is reported, not applied.

Whether each mutant is killed is the job of ``tests/mutation/run_mutants.py`` (minutes, not in CI);
this only checks what would make that command fail before it starts judging anything.
"""

from __future__ import annotations

from pathlib import Path

from tests.mutation.run_mutants import CATALOGUE, ROOT, Edit, load_catalogue, mutate


def test_the_catalogue_names_real_files_and_tests() -> None:
    mutants = load_catalogue(CATALOGUE)
    assert len(mutants) >= 50
    areas = {m.area for m in mutants}
    for area in (
        "path containment",
        "filters and secrets",
        "configuration and trust",
        "request arguments",
        "engine and cancellation",
    ):
        assert area in areas
    for m in mutants:
        assert (ROOT / m.file).is_file(), m.id
        assert m.file.startswith("server/agentls/"), m.id
        for test in m.tests:
            path = test.split("::", 1)[0]
            assert Path(path).parts[:2] == ("tests", "unit"), f"{m.id}: keep mutants on fast tests"
            assert (ROOT / path).is_file(), f"{m.id}: {path}"
        assert m.what, m.id


def test_a_mutant_applies_only_to_text_found_exactly_once() -> None:
    text = "a = 1\nb = 2\nb = 2\n"
    assert mutate(text, (Edit("a = 1", "a = 0"),)) == ("a = 0\nb = 2\nb = 2\n", "")
    moved, why = mutate(text, (Edit("c = 3", "c = 0"),))
    assert moved is None and "not found" in why
    twice, why = mutate(text, (Edit("b = 2", "b = 0"),))
    assert twice is None and "2 times" in why
    # every edit of a mutant applies, or none does
    partial, _ = mutate(text, (Edit("a = 1", "a = 0"), Edit("c = 3", "c = 0")))
    assert partial is None
