"""The previous gateway for the performance suite: a git worktree of an earlier commit.

``checkout(rev, where)`` adds a detached worktree of ``rev`` (``git worktree add``), checks
that a Python started the way the suite starts the previous gateway (working directory and
``PYTHONPATH`` the worktree, the same virtual environment) imports ``gateway``, ``resolvers``
and every kind's entry point from the worktree and not from this tree, and removes the
worktree at the end (``git worktree remove --force``). The kinds' entry points name
modules, which resolve through ``PYTHONPATH`` first, so the previous gateway runs its own
adapters too.

    with checkout("dc4f832d", Path("/tmp/x")) as tree:
        subprocess.run([...], cwd=tree.path, env={**os.environ, **tree.env})
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The gateway as it was before the work the suite's current targets measure.
DEFAULT_REVISION = "dc4f832d253e69b7d68abf2f94a9a24106e52119"


@dataclass(frozen=True)
class Tree:
    """A worktree of an earlier commit, and how to run Python on it."""

    revision: str  # as asked for
    commit: str  # the full hash it names
    subject: str  # the commit's first line
    path: Path

    @property
    def env(self) -> dict[str, str]:
        """Environment additions: the worktree's packages before this tree's."""
        return {"PYTHONPATH": str(self.path)}

    def describe(self) -> dict[str, str]:
        return {"revision": self.revision, "commit": self.commit, "subject": self.subject}


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def imported_from(tree: Path, env: dict[str, str]) -> dict[str, str]:
    """Where a Python started like the previous gateway imports its packages from."""
    code = (
        "import json, sys, gateway, resolvers\n"
        "from importlib.metadata import entry_points\n"
        "found = {'gateway': gateway.__file__, 'resolvers': resolvers.__file__}\n"
        "for point in entry_points(group='dls_gateway.kinds'):\n"
        "    point.load()\n"
        "    found['kind ' + point.name] = sys.modules[point.module].__file__\n"
        "print(json.dumps(found))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tree,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    found: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@contextlib.contextmanager
def checkout(revision: str, where: Path) -> Iterator[Tree]:
    """A verified worktree of ``revision`` at ``where`` (which must not exist yet)."""
    commit = _git("rev-parse", "--verify", revision + "^{commit}")
    subject = _git("log", "-1", "--format=%s", commit)
    _git("worktree", "add", "--detach", str(where), commit)
    try:
        tree = Tree(revision, commit, subject, where.resolve())
        for package, path in imported_from(tree.path, tree.env).items():
            if not Path(path).resolve().is_relative_to(tree.path):
                raise RuntimeError(
                    f"the previous gateway would import {package} from {path}, "
                    f"not from its worktree {tree.path}"
                )
        yield tree
    finally:
        with contextlib.suppress(RuntimeError):
            _git("worktree", "remove", "--force", str(where))
        with contextlib.suppress(RuntimeError):
            _git("worktree", "prune")
