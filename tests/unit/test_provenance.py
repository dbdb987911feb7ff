"""Where the running package came from: the shapes that a repository could have chosen."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentls import provenance


@pytest.fixture(autouse=True)
def _not_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(provenance.ALLOW_ENV, raising=False)


def test_the_package_folder_as_working_directory_is_refused() -> None:
    here = provenance.package_dir()
    message = provenance.shadowed_by_working_directory(str(here.parent))
    assert message is not None and str(here) in message and "-P" in message
    # A checkout further down (an editable install of server/agentls) is the user's own choice.
    assert provenance.shadowed_by_working_directory(str(here.parent.parent)) is None
    assert provenance.shadowed_by_working_directory(str(here)) is None


def test_a_workspace_folder_holding_the_package_is_refused(tmp_path: Path) -> None:
    here = provenance.package_dir()
    for folder in (here, here.parent, here.parent.parent):
        message = provenance.inside_folders([tmp_path, folder])
        assert message is not None and str(folder) in message
    assert provenance.inside_folders([tmp_path, here / "lsp" / "x"]) is None
    assert provenance.inside_folders([]) is None


def test_developers_may_allow_it(monkeypatch: pytest.MonkeyPatch) -> None:
    here = provenance.package_dir()
    monkeypatch.setenv(provenance.ALLOW_ENV, "1")
    assert provenance.inside_folders([here.parent]) is None
    assert provenance.shadowed_by_working_directory(str(here.parent)) is None
    monkeypatch.setenv(provenance.ALLOW_ENV, "yes")  # only "1" allows
    assert provenance.inside_folders([here.parent]) is not None
