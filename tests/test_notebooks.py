"""Structure checks for the notebooks: names, opening, setup, stored outputs and metadata.

nbval checks that the stored outputs equal a fresh run; these tests check what nbval does not:
that every notebook opens the same way, that its Colab badge and install cell point at this
repository, that it was run top to bottom, and that nothing machine-specific or stray was stored.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

TOPICS = {
    "01": "scalar_generators",
    "02": "array_generators",
    "03": "image_label_generators",
    "04": "errors_and_debugging",
    "05": "state_and_reproducibility",
    "06": "performance",
    "07": "files_and_tfrecords",
    "08": "scaling_out",
}
ALLOWED_TAGS = {"raises-exception", "nbval-ignore-output"}
ALLOWED_NOTEBOOK_METADATA = {"kernelspec", "language_info"}
MAX_BYTES = 1_000_000
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:work|tmp|home|root|usr|opt|var|private)/")
MEMORY_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def repository_url() -> str:
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]["urls"]["Repository"].rstrip("/")


def package_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]["version"]


def colab_url(path: Path) -> str:
    repo = repository_url().removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{repo}/blob/main/notebooks/{path.name}"


def load(path: Path) -> dict:
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def source(cell: dict) -> str:
    text = cell["source"]
    return text if isinstance(text, str) else "".join(text)


def code_cells(notebook: dict) -> list[dict]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def output_texts(cell: dict) -> list[str]:
    texts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            texts.append(source({"source": output["text"]}))
        elif output["output_type"] in ("execute_result", "display_data"):
            plain = output.get("data", {}).get("text/plain", "")
            texts.append(source({"source": plain}))
        elif output["output_type"] == "error":
            texts.append(output["evalue"])
            texts.extend(ANSI_ESCAPE.sub("", line) for line in output.get("traceback", []))
    return texts


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_name_is_numbered_topic(path: Path):
    match = re.fullmatch(r"(\d\d)_([a-z0-9_]+)\.ipynb", path.name)
    assert match, f"{path.name}: expected a name like 01_scalar_generators.ipynb"
    number, topic = match.groups()
    assert TOPICS.get(number) == topic, (
        f"{path.name}: notebook {number} must be {number}_{TOPICS.get(number)}.ipynb"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_opens_with_title_and_one_colab_badge(path: Path):
    first = load(path)["cells"][0]
    text = source(first)
    assert first["cell_type"] == "markdown", f"{path.name}: the first cell must be markdown"
    assert text.startswith("# "), f"{path.name}: the first cell must start with an H1 title"
    badges = re.findall(r"\[!\[[^\]]*\]\(([^)]+)\)\]\(([^)]+)\)", text)
    assert len(badges) == 1, f"{path.name}: expected one Open-in-Colab badge, found {len(badges)}"
    image, link = badges[0]
    assert image == BADGE_IMAGE
    assert link == colab_url(path), (
        f"{path.name}: badge points at {link}, expected {colab_url(path)}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_section_installs_this_repository_on_colab_only(path: Path):
    cells = load(path)["cells"]
    headings = [i for i, cell in enumerate(cells) if source(cell).startswith("## Setup")]
    assert headings, f"{path.name}: no '## Setup' section"
    setup = cells[headings[0] + 1]
    text = source(setup)
    assert setup["cell_type"] == "code", f"{path.name}: the cell after '## Setup' must be code"
    assert 'if "google.colab" in sys.modules:' in text
    release = f"git+{repository_url()}@v{package_version()}"
    assert f'%pip install -q "{release}"' in text, (
        f"{path.name}: the Colab install cell must install the release matching pyproject's "
        f"version, {release} (see DEVELOPERS.md, Releases)"
    )
    assert 'os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"' in text
    earlier = "".join(
        source(cell) for cell in cells[: headings[0] + 1] if cell["cell_type"] == "code"
    )
    assert "import tensorflow" not in earlier + text, (
        f"{path.name}: TensorFlow must be imported after TF_CPP_MIN_LOG_LEVEL is set"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_was_run_top_to_bottom(path: Path):
    counts = [cell["execution_count"] for cell in code_cells(load(path))]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts are {counts}; "
        f"re-run it with `make execute NB=notebooks/{path.name}`"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_has_no_stray_metadata(path: Path):
    notebook = load(path)
    extra = set(notebook["metadata"]) - ALLOWED_NOTEBOOK_METADATA
    assert not extra, f"{path.name}: stray notebook metadata {sorted(extra)}"
    for index, cell in enumerate(notebook["cells"]):
        extra = set(cell.get("metadata", {})) - {"tags"}
        assert not extra, f"{path.name}, cell {index}: stray cell metadata {sorted(extra)}"
        tags = set(cell.get("metadata", {}).get("tags", []))
        assert tags <= ALLOWED_TAGS, (
            f"{path.name}, cell {index}: unknown tags {sorted(tags - ALLOWED_TAGS)}"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_errors_are_shown_only_on_purpose(path: Path):
    for index, cell in enumerate(code_cells(load(path)), start=1):
        tagged = "raises-exception" in cell.get("metadata", {}).get("tags", [])
        errors = [out for out in cell.get("outputs", []) if out["output_type"] == "error"]
        assert tagged == bool(errors), f"{path.name}, code cell {index}: " + (
            "tagged raises-exception but shows no error" if tagged else "shows an untagged error"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_are_machine_independent(path: Path):
    for index, cell in enumerate(code_cells(load(path)), start=1):
        for output in cell.get("outputs", []):
            assert output.get("name") != "stderr", (
                f"{path.name}, code cell {index}: stderr output stored: {output_texts(cell)}"
            )
        for text in output_texts(cell):
            assert not ABSOLUTE_PATH.search(text), (
                f"{path.name}, code cell {index}: absolute path in output"
            )
            assert not MEMORY_ADDRESS.search(text), (
                f"{path.name}, code cell {index}: memory address"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_is_small(path: Path):
    size = path.stat().st_size
    assert size < MAX_BYTES, f"{path.name} is {size:,} bytes; keep notebooks under {MAX_BYTES:,}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_readme_lists_notebook_with_badge(path: Path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"notebooks/{path.name}" in readme, f"README.md does not link notebooks/{path.name}"
    assert colab_url(path) in readme, f"README.md has no Colab badge for {path.name}"


def heading_anchors(path: Path) -> set[str]:
    """Anchors JupyterLab and nbconvert give a notebook's headings (inline markup dropped)."""
    anchors = set()
    for cell in load(path)["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for line in source(cell).splitlines():
            heading = re.match(r"#{1,6}\s+(.*)", line)
            if heading:
                text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1).strip())
                anchors.add(text.replace("`", "").replace("*", "").replace(" ", "-"))
    return anchors


def test_readme_section_links_point_at_existing_headings():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\(notebooks/(\d\d_[a-z0-9_]+\.ipynb)#([^)\s]+)\)", readme)
    assert links, "README.md links no notebook section"
    for name, anchor in links:
        assert unquote(anchor) in heading_anchors(NOTEBOOK_DIR / name), (
            f"README.md links {name}#{anchor}, which is no heading of that notebook"
        )
