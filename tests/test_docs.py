"""Every code block in the README, docs/ and the shipped model cards runs (python) or parses (shell),
and every relative link points at a file that exists."""

import re
import shlex
import shutil
from pathlib import Path

import pytest

from tada_core.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
CARDS = sorted(ROOT.glob("vectors/*/README.md")) + sorted(ROOT.glob("saes/*/README.md"))


def blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def cases(paths, lang):
    return [pytest.param(p, i, id=f"{p.relative_to(ROOT)}#{i}") for p in paths for i, _ in enumerate(blocks(p, lang))]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A working folder with copies of the shipped artifacts and results, so blocks that write stay out of the repo."""
    root = tmp_path_factory.mktemp("docs")
    for name in ("vectors", "saes", "results"):
        shutil.copytree(ROOT / name, root / name)
    return root


@pytest.mark.parametrize("path, index", cases(DOCS, "python"))
def test_python_blocks_run(path, index, sandbox, monkeypatch):
    monkeypatch.chdir(sandbox)
    exec(compile(blocks(path, "python")[index], f"{path.name}#{index}", "exec"), {"__name__": "__doc_block__"})


def test_the_shipped_cards_snippets_run(sandbox, monkeypatch):
    """One CAA and one SAE vector card and the SAE folder's card, run as written from the repo root."""
    monkeypatch.chdir(sandbox)
    chosen = [p for p in CARDS if p.parent.name in ("tada-organism-drums-caa", "tada-organism-drums-sae")]
    chosen += [p for p in CARDS if p.parent.parent.name == "saes"]
    assert len(chosen) == 3
    for card in chosen:
        (code,) = blocks(card, "python")
        exec(compile(code, str(card.relative_to(ROOT)), "exec"), {"__name__": "__card__"})


@pytest.mark.parametrize("card", CARDS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_card_loads_its_own_folder(card):
    (code,) = blocks(card, "python")
    source = re.search(r"load_(?:vector|many)\('([^']+)'\)", code).group(1)
    assert (ROOT / source).resolve() == card.parent.resolve()


def shell_commands(text: str):
    for line in text.replace("\\\n", " ").splitlines():
        line = line.split(" #")[0].strip()
        for part in re.split(r"\s*(?:&&|;)\s*", line):
            if part:
                yield part


@pytest.mark.parametrize("path, index", cases(DOCS, "bash"))
def test_shell_blocks_parse(path, index):
    """`tada` commands parse with the real parser (flags exist, values are valid); scripts they run exist."""
    parser = build_parser()
    for command in shell_commands(blocks(path, "bash")[index]):
        words = [w for w in shlex.split(command) if "=" not in w or w.startswith("-")]
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
            words.pop(0)
        if words and words[0] == "accelerate" and "tada_core.cli" in words:   # accelerate launch ... -m tada_core.cli
            words = ["tada"] + words[words.index("tada_core.cli") + 1:]
        if words and words[0] == "tada":
            parser.parse_args(words[1:])           # SystemExit (a failed test) on an unknown flag or bad value
        elif words and words[0] in ("python", "bash") and len(words) > 1 and not words[1].startswith("-"):
            assert (ROOT / words[1]).is_file(), command


@pytest.mark.parametrize("path", DOCS + CARDS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_exist(path):
    for target in re.findall(r"\]\(([^)#]+)\)", path.read_text(encoding="utf-8")):
        if not re.match(r"[a-z]+://", target):
            assert (path.parent / target).exists(), f"{path.name} links to missing {target}"


def _requirements(lines) -> dict[str, str]:
    """{name: specifier; marker} of requirement lines, names normalized as pip does."""
    out = {}
    for line in lines:
        line = line.split(" #")[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        m = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", line)
        out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2).replace(" ", "").replace('"', "'")
    return out


def test_requirements_and_pyproject_ask_for_the_same_ranges_and_every_range_has_an_upper_bound():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = _requirements((ROOT / "requirements.txt").read_text().splitlines())
    declared = _requirements(project["dependencies"] + project["optional-dependencies"]["app"])
    assert pinned == declared
    for name, spec in pinned.items():
        assert ">=" in spec and "<" in spec.replace("<=", ""), f"{name}: a lower and an upper bound ({spec})"


def test_the_lock_pins_every_installed_dependency_that_matters_exactly():
    lock = (ROOT / "constraints.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lock if line and not line.startswith("#"))
    pins = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in pins.items()}
    for name in ("torch", "diffusers", "transformers", "tokenizers", "accelerate", "huggingface-hub", "gradio",
                 "numpy", "librosa", "scipy", "scikit-learn", "soundfile", "essentia", "playwright", "pytest",
                 "safetensors", "numba"):
        assert name in pins, name
    assert "+" not in pins["torch"]            # any build of that release: CPU or CUDA
    ranges = _requirements((ROOT / "requirements.txt").read_text().splitlines())
    from packaging.specifiers import SpecifierSet

    for name, spec in ranges.items():
        spec = spec.split(";")[0]
        if name in pins:
            assert SpecifierSet(spec, prereleases=True).contains(pins[name], prereleases=True), (name, spec)


def test_ci_installs_and_tests_exactly_as_the_readme_says():
    """Each install and test command in .ci/run is one of the README's, verbatim, so a missing step fails CI."""
    readme = "\n".join(blocks(ROOT / "README.md", "bash"))
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in ci.splitlines() if line.strip().startswith(("pip install", "python -m pytest"))]
    assert len(commands) == 3, commands
    for command in commands[:2]:
        assert command in readme, command
    assert "python -m pytest -q" in readme and commands[2].startswith("python -m pytest -q")
    assert "python3 -m venv" in ci and "TADA_REQUIRE_BROWSER=1" in ci and "apt-get install" in ci
