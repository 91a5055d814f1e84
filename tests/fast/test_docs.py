"""The documentation: a short front page, links that stay inside the repository and resolve, and a model card
for every shipped model whose metadata is its manifest's.

Reads files only (no torch, no MNIST, no model run): `eval-gan results --check` (tests/test_shipped_artifacts.py)
proves the generated sections and cards equal what the manifests say; this checks what a reader and the
Hugging Face card parser see.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

from common.manifest import P0_PROTOCOL, read_manifest


def _repository() -> Path:
    """The repository root: the nearest folder above this file holding pyproject.toml (tests/ may be split)."""
    for folder in Path(__file__).resolve().parents:
        if (folder / "pyproject.toml").is_file():
            return folder
    raise AssertionError("no pyproject.toml above tests/")


REPO = _repository()
README = REPO / "README.md"
README_MAX_LINES = 250
DOCS = sorted((REPO / "docs").rglob("*.md"))
GAN_FOLDERS = sorted(
    path.parent
    for path in (REPO / "artifacts").glob("*/manifest.json")
    if json.loads(path.read_text()).get("artifact") == "gan"
)
CARDS = sorted((REPO / "artifacts").glob("*/README.md"))
PAGES = [README, *DOCS, *CARDS]
LOOPBACK = re.compile(r"https?://(127\.0\.0\.1|localhost|0\.0\.0\.0)[:/]")

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.MULTILINE)
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
AUTOLINK = re.compile(r"<([a-z][a-z0-9+.-]*:[^>\s]*)>", re.IGNORECASE)


def _prose(text: str) -> str:
    """The text a Markdown renderer turns into links: fenced blocks and inline code removed."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _links(page: Path) -> list[str]:
    prose = _prose(page.read_text())
    return [
        match.group(1)
        for pattern in (INLINE_LINK, REFERENCE_LINK, HTML_LINK, AUTOLINK)
        for match in pattern.finditer(prose)
    ]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = INLINE_CODE.sub(lambda code: code.group(0)[1:-1], heading.strip()).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps its text
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors: set[str] = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug, count = _slug(match.group(1)), 0
            while (slug if count == 0 else f"{slug}-{count}") in anchors:
                count += 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _name(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


def test_the_front_page_is_short_and_keeps_its_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"
    text = README.read_text()
    try_it = text.split("\n## Try it\n", 1)[1].split("\n## ", 1)[0]
    assert re.search(
        r"^```bash\n# runtime only: set up and write a grid of digits from the embedded default model\n",
        try_it,
        re.MULTILINE,
    ), "README.md's '## Try it' section lost its runtime-only block"
    assert re.search(r"^```bash\n# everything: set up and run the tests \(CI runs exactly this\)\n", text, re.MULTILINE)
    for command in ("gan-runtime", "train-gan", "eval-gan", "export-gan", "gan-demo"):
        assert re.search(rf"^\| `{command}` \|", text, re.MULTILINE), f"the CLI table lacks {command}"


def test_the_generated_sections_have_their_markers():
    readme, results = README.read_text(), (REPO / "docs" / "results.md").read_text()
    assert readme.count("<!-- headline:start -->") == readme.count("<!-- headline:end -->") == 1
    assert results.count("<!-- results:start -->") == results.count("<!-- results:end -->") == 1
    assert "<!-- results:start -->" not in readme  # the full table lives in docs/results.md only


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_no_link_leaves_the_repository_and_every_link_resolves(page):
    text = page.read_text()
    # No URL at all, in prose or code, except the demo's own loopback address.
    urls = [url for url in re.findall(r"[a-z][a-z0-9+.-]*://\S+", text, re.IGNORECASE) if not LOOPBACK.match(url)]
    assert not urls, f"{_name(page)} names addresses outside the repository: {urls}"
    for target in _links(page):
        assert target, f"{_name(page)} has an empty link"
        assert not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE), f"{_name(page)}: {target} leaves"
        path_part, _, fragment = target.partition("#")
        path_part = unquote(path_part)
        assert not path_part.startswith("/"), f"{_name(page)}: {target} is absolute"
        destination = (page.parent / path_part).resolve() if path_part else page
        assert destination.is_relative_to(REPO), f"{_name(page)}: {target} points outside the repository"
        assert destination.exists(), f"{_name(page)}: {target} does not exist"
        if fragment and destination.suffix == ".md":
            assert fragment in _anchors(destination), f"{_name(page)}: {target} names no heading of its page"


def test_the_front_page_shows_the_default_models_grid():
    scored = [(read_manifest(folder).p0_fid(), folder.name) for folder in GAN_FOLDERS]
    default = min((fid, name) for fid, name in scored if fid is not None)[1]
    images = [target for target in _links(README) if target.endswith(".png")]
    assert images and images[0] == f"docs/results/{default}.png"


def test_the_front_pages_python_example_runs(tmp_path):
    (example,) = re.findall(r"\n## From Python\n\n```python\n(.*?)```", README.read_text(), re.DOTALL)
    (tmp_path / "example.py").write_text(example)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    ran = subprocess.run(
        [sys.executable, "example.py"], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    assert "accepted" in ran.stdout and (tmp_path / "seven.png").is_file()


def _front_matter(card: Path) -> dict:
    text = card.read_text()
    assert text.startswith("---\n"), f"{_name(card)} does not start with front matter"
    metadata = yaml.safe_load(text[4:].split("\n---\n", 1)[0])
    assert isinstance(metadata, dict)
    return metadata


def test_every_shipped_model_has_a_card():
    assert GAN_FOLDERS
    assert {folder.name for folder in GAN_FOLDERS} <= {card.parent.name for card in CARDS}


@pytest.mark.parametrize("folder", GAN_FOLDERS, ids=lambda folder: folder.name)
def test_a_models_card_carries_its_manifests_p0_metrics(folder):
    metadata = _front_matter(folder / "README.md")
    assert metadata["license"] == "mit" and metadata["library_name"] == "onnx"
    assert {"gan", "mnist", "onnx", "drs"} <= set(metadata["tags"])
    assert metadata["datasets"] == ["mnist"]
    (entry,) = metadata["model-index"]
    assert entry["name"] == folder.name
    (result,) = entry["results"]
    assert result["task"]["type"] == "image-generation"
    assert result["dataset"]["name"] == "MNIST" and result["dataset"]["type"] == "mnist"
    metrics = {metric["type"]: metric for metric in result["metrics"]}
    assert set(metrics) == {"fid", "precision", "recall"} and all(metric["name"] for metric in metrics.values())
    p0 = read_manifest(folder).metric_summary(P0_PROTOCOL)
    for kind, key in (("fid", "fid"), ("precision", "precision_k3"), ("recall", "recall_k3")):
        assert metrics[kind]["value"] == pytest.approx(p0[key].mean, abs=5e-5), f"{folder.name}: {kind}"
    body = (folder / "README.md").read_text()
    for section in ("## What it is", "## How to sample it", "## Training recipe", "## Results (P0)", "## Limitations"):
        assert f"\n{section}\n" in body, f"{folder.name}'s card lacks {section}"
    assert f"configs/{folder.name}.toml" in body


def test_the_classifiers_card_is_not_a_gans():
    card = REPO / "artifacts" / "mnist_classifier" / "README.md"
    if not card.is_file():
        pytest.skip("no classifier shipped")
    metadata = _front_matter(card)
    manifest = json.loads((card.parent / "manifest.json").read_text())
    (result,) = metadata["model-index"][0]["results"]
    assert result["task"]["type"] == "image-classification" and "gan" not in metadata["tags"]
    assert result["metrics"][0]["value"] == manifest["test_accuracy"]
