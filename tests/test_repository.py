"""Checks of the repository's own files: licence, citation, dependencies, workflow, Lab settings.

The notebooks' install cell pins a release tag; that it matches the package version is checked in
tests/test_notebooks.py. The workflow files' schema and security are checked by `make test` itself
(check-jsonschema and zizmor).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
TEST_TOOLS = {"pytest", "nbval", "hypothesis", "ruff", "mypy", "jupyterlab", "grain"}


def project() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()


def test_licence_is_apache_2_and_declared():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert project()["license"] == "Apache-2.0"


def test_citation_matches_package_version_and_licence():
    text = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert re.search(rf"^version: {re.escape(project()['version'])}$", text, re.MULTILINE)
    assert re.search(r"^license: Apache-2\.0$", text, re.MULTILINE)
    assert "repository-code: " + f'"{project()["urls"]["Repository"]}"' in text


def test_runtime_dependencies_exclude_test_and_lab_tools():
    runtime = {requirement_name(r) for r in project()["dependencies"]}
    assert runtime == {"tensorflow", "numpy", "matplotlib", "tqdm"}
    assert not runtime & TEST_TOOLS


def test_requirements_give_both_readme_commands_everything():
    extras = project()["optional-dependencies"]
    assert {"lab", "test", "bench"} <= set(extras)
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert "-e .[lab,test]" in lines
    locked = {
        line.split("==")[0].lower() for line in (ROOT / "requirements.lock").read_text().split()
    }
    wanted = {
        requirement_name(r) for r in extras["lab"] + extras["test"] + project()["dependencies"]
    }
    wanted.discard("tomli")  # Python 3.10 only; the lock is for Python 3.11
    missing = {name for name in wanted if name.replace("_", "-") not in locked}
    assert not missing, f"requirements.lock lacks {sorted(missing)}"


def test_workflow_actions_are_pinned_by_commit():
    for path in (ROOT / ".github" / "workflows").glob("*.yml"):
        for ref in re.findall(r"uses:\s*(\S+)", path.read_text(encoding="utf-8")):
            assert re.search(r"@[0-9a-f]{40}$", ref), f"{path.name}: {ref} is not pinned by hash"


def test_jupyterlab_override_turns_off_news_and_update_checks():
    overrides = json.loads((ROOT / "jupyter" / "overrides.json").read_text(encoding="utf-8"))
    notification = overrides["@jupyterlab/apputils-extension:notification"]
    assert notification == {"fetchNews": "false", "checkForUpdates": False}


@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(),
    reason="runs only in the venv that `make` creates (it installs the override)",
)
def test_project_venv_has_the_jupyterlab_override():
    installed = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    assert installed.read_text(encoding="utf-8") == (ROOT / "jupyter" / "overrides.json").read_text(
        encoding="utf-8"
    )
