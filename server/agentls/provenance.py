"""Where this ``agentls`` package was imported from, and whether a workspace could have chosen it.

``python -m agentls`` puts the working directory first on ``sys.path``; an editor that starts the
server inside the project would then run a repository's own ``agentls/`` package instead of the
installed one. The editors' launchers avoid that (a neutral working directory and ``-P`` /
``PYTHONSAFEPATH=1``, or the ``agentls`` console script); this module is the server's own check,
done twice: at start-up against the working directory, and at ``initialize`` against the workspace
folders (the first moment they are known). A check that fails stops the server with a message
that says what happened and how to start it safely.

The check cannot protect against a repository whose package already replaced this one (that code
never runs); it catches the partial shadows: an old or edited copy of agentls vendored in a
repository, ``PYTHONPATH`` pointing into a project, a launcher that lost its ``-P``. Developers of
agentls itself, who open the source tree with an editable install, set
``AGENTLS_ALLOW_WORKSPACE_PACKAGE=1``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

ALLOW_ENV = "AGENTLS_ALLOW_WORKSPACE_PACKAGE"
"""Set to ``1`` to run a package that lives inside a workspace folder (developing agentls)."""

REFUSED_EXIT_CODE = 3
"""The exit code of a server that refused to run a shadowed package."""


def package_dir() -> Path:
    """The realpath of the ``agentls`` package directory that is running."""
    import agentls

    return Path(os.path.realpath(os.path.dirname(agentls.__file__)))


def _allowed() -> bool:
    return os.environ.get(ALLOW_ENV, "") == "1"


def _advice() -> str:
    return (
        "Start the server with the installed console script (`agentls serve`) or with "
        "`python -P -m agentls serve` from a folder outside the project, and install agentls "
        f"outside the workspace (set {ALLOW_ENV}=1 only when developing agentls itself)."
    )


def shadowed_by_working_directory(cwd: str | None = None) -> str | None:
    """Why the running package may come from the working directory, or None when it cannot.

    The shape of the attack is exact: the package's parent folder *is* the working directory
    (``-m`` or ``-c`` put it first on ``sys.path``). A package further down (an editable install
    of a checkout, ``server/agentls``) was put on the path by the user's own environment.
    """
    if _allowed():
        return None
    here = package_dir()
    try:
        where = Path(os.path.realpath(cwd if cwd is not None else os.getcwd()))
    except OSError:
        return None
    if here.parent != where:
        return None
    return (
        f"agentls refuses to start: its package {here} was imported from the working directory "
        f"{where}, which can be a repository's own code. {_advice()}"
    )


def inside_folders(folders: Iterable[Path]) -> str | None:
    """Why the running package lies inside one of the workspace folders, or None."""
    if _allowed():
        return None
    here = package_dir()
    for folder in folders:
        root = Path(os.path.realpath(folder))
        if here == root or root in here.parents:
            return (
                f"agentls refuses to serve {root}: the running agentls package {here} was "
                f"imported from inside that workspace folder, so the repository may have "
                f"replaced the server's code. {_advice()}"
            )
    return None
