"""The layers of docs/ARCHITECTURE.md and what each may import, enforced on the source: every
import statement of a module counts, also those inside functions (a lazy import is still a
dependency). Data flows one way: image -> family levels -> tables -> coding -> container -> bytes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hiercodec"


def imports(path: Path) -> set[str]:
    """The modules a file imports, as dotted names (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = path.relative_to(ROOT).with_suffix("").parts[: -node.level]
                base = ".".join(parts + ((base,) if base else ()))
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return out


def modules(*paths: str) -> list[Path]:
    out = []
    for p in paths:
        target = PACKAGE / p
        out += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    return out


def offending(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for f in files:
        for name in sorted(imports(f)):
            if any(name == x or name.startswith(x + ".") for x in forbidden):
                bad.append(f"{f.relative_to(ROOT)} imports {name}")
    return bad


FAMILY = ("hiercodec.families",)
OUTER = ("hiercodec.train", "hiercodec.export", "hiercodec.bench", "hiercodec.cli", "hiercodec.api",
         "hiercodec.codec")

RULES = [
    # (what, files, forbidden imports)
    ("the container reads and writes bytes only: no torch, no family, no coder",
     modules("container.py"), ("torch", "hiercodec.coding", "hiercodec.exact", "hiercodec.nn", "hiercodec.zoo") + FAMILY + OUTER),
    ("coding/ turns integer tables into streams: no torch, no family",
     modules("coding"), ("torch", "hiercodec.container", "hiercodec.exact", "hiercodec.nn", "hiercodec.zoo") + FAMILY + OUTER),
    ("exact/ is integer inference: no family (it shares only kernel shapes with nn/)",
     modules("exact"), ("hiercodec.container", "hiercodec.zoo") + FAMILY + OUTER),
    ("engine/ is the compiled twin of exact/: no family, no bytes, no coder",
     modules("engine"), ("hiercodec.container", "hiercodec.coding", "hiercodec.nn", "hiercodec.zoo") + FAMILY + OUTER),
    ("the only numba user is engine/ (the torch reference runs without it)",
     [f for f in sorted(PACKAGE.rglob("*.py")) if "engine" not in f.relative_to(PACKAGE).parts], ("numba",)),
    ("nn/ is float building blocks: no family, no exact code",
     modules("nn"), ("hiercodec.container", "hiercodec.coding", "hiercodec.exact", "hiercodec.zoo") + FAMILY + OUTER),
    ("a family never touches bytes, training, export or benchmarks",
     modules("families"), ("hiercodec.container", "hiercodec.zoo") + OUTER),
    ("the codec path never imports training, export or benchmarks",
     modules("codec.py", "zoo", "report.py", "geometry.py", "tiling.py", "images.py", "fileio.py"),
     ("hiercodec.train", "hiercodec.export", "hiercodec.bench", "hiercodec.cli")),
    ("the API imports no training or export code (verify may use the bench's quality metric)",
     modules("api.py"), ("hiercodec.train", "hiercodec.export", "hiercodec.cli", "hiercodec.bench.lossless",
                         "hiercodec.bench.lossy", "hiercodec.bench.peers", "hiercodec.bench.peers_lossy",
                         "hiercodec.bench.heldout")),
    ("quantization reads the families' declarations and exact code, never training or benchmarks",
     modules("export/quantize.py", "export/hierarchy.py", "export/vqvae2.py", "export/ham.py", "export/pixelvae.py"),
     ("hiercodec.train", "hiercodec.bench", "hiercodec.cli", "hiercodec.codec", "hiercodec.api")),
    ("exporting a run reads the run (train/) and never benchmarks",
     modules("export/run.py"), ("hiercodec.bench", "hiercodec.cli")),
]


@pytest.mark.parametrize("what, files, forbidden", RULES, ids=[r[0].split(":")[0] for r in RULES])
def test_import_rules(what, files, forbidden):
    assert files, f"no files for rule {what!r}"
    bad = offending(files, forbidden)
    assert not bad, f"{what}:\n" + "\n".join(bad)


def test_constriction_has_one_importer():
    """coding/ans.py is the only module that imports the coder (its version is checked there)."""
    users = [f.relative_to(ROOT).as_posix() for f in sorted(PACKAGE.rglob("*.py"))
             if any(n == "constriction" or n.startswith("constriction.") for n in imports(f))]
    assert users == ["hiercodec/coding/ans.py"], users


def test_the_rules_see_a_violation(tmp_path):
    """The checker itself: a lazy import inside a function is found (a test that cannot fail is
    no test)."""
    f = PACKAGE / "coding" / "groups.py"
    fake = tmp_path / "hiercodec" / "coding" / "fake.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(f.read_text() + "\n\ndef later():\n    import torch\n    from hiercodec.families import base\n")
    found = imports(fake)
    assert "torch" in found and "hiercodec.families.base" in found


def test_checkout_finds_its_cli(tmp_path):
    """`python -m pytest` in a checkout imports hiercodec from the checkout, whose CLI sits in the
    top-level cli/ folder (installed as hiercodec.cli): it must be found there whatever kind of
    installation sits beside it. Simulated in a subprocess without the editable install's finder."""
    import subprocess
    import sys

    code = ("import sys\n"
            "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__module__]\n"
            f"sys.path.insert(0, {str(ROOT)!r})\n"
            "import hiercodec\n"
            "assert hiercodec.__file__.startswith(sys.path[0]), hiercodec.__file__\n"
            "from hiercodec.cli.main import cli\n"
            "print(cli.name)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
