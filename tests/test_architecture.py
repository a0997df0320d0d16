"""Dependency rules of ARCHITECTURE.md, checked by parsing every module's imports."""
import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def _modules(*dirs):
    for d in dirs:
        yield from sorted((ROOT / d).rglob("*.py"))


def _imports(path):
    """[(top-level module, full name, lineno, at module level)] of every import statement."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(n) for n in tree.body}
    for node in tree.body:        # imports inside a module-level `try:` count as module level
        if isinstance(node, ast.Try):
            top_level |= {id(n) for n in node.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:        # relative: resolve inside the package
                pkg = path.relative_to(ROOT).with_suffix("").parts[:-node.level]
                names = [".".join(pkg + ((node.module,) if node.module else ()))]
            else:
                names = [node.module]
        else:
            continue
        out += [(n.split(".")[0], n, node.lineno, id(node) in top_level) for n in names]
    return out


def _rel(path):
    return path.relative_to(ROOT).as_posix()


def test_tuner_imports_only_stdlib_and_numpy():
    bad = [(_rel(f), full, line) for f in _modules("tuner") for top, full, line, _ in _imports(f)
           if top not in STDLIB | {"numpy", "tuner"}]
    assert bad == []


def test_tuner_names_no_application():
    """The generic tuner names no nbconv path, message or knob (code, comments and docstrings)."""
    files = list(_modules("tuner"))
    assert files
    bad = [(_rel(f), n, line.strip()) for f in files
           for n, line in enumerate(f.read_text().splitlines(), 1) if "nbconv" in line.lower()]
    assert bad == []


@pytest.mark.parametrize("name", ["nbconv/spec.py", "nbconv/reference.py"])
def test_spec_and_reference_import_numpy_only(name):
    path = ROOT / name
    bad = [(full, line) for top, full, line, _ in _imports(path)
           if top not in STDLIB | {"numpy"} and full not in ("nbconv.spec", "nbconv")]
    assert bad == []


def test_numba_only_inside_impls():
    bad = []
    for f in _modules("nbconv", "tuner"):
        inside = _rel(f).startswith("nbconv/impls/")
        for top, full, line, _ in _imports(f):
            if top == "numba" and not inside:
                bad.append((_rel(f), full, line))
    assert bad == []


def test_numba_cuda_only_in_a_lazily_imported_cuda_module():
    cuda_modules = {f for f in _modules("nbconv") for _, full, _, _ in _imports(f)
                    if full.startswith("numba.cuda")}
    for f in cuda_modules:
        assert "cuda" in f.stem, f"{_rel(f)} imports numba.cuda but is not a CUDA module"
    names = {".".join(f.relative_to(ROOT).with_suffix("").parts) for f in cuda_modules}
    eager = [(_rel(f), full, line) for f in _modules("nbconv", "tuner")
             for _, full, line, module_level in _imports(f) if module_level and full in names]
    assert eager == [], "a CUDA module must be imported lazily (inside a function)"


def test_nothing_imports_benchmarks_or_reports():
    # nbconv.cli delegates `bench`/`report`/`overhead` through importlib at call time, never an import
    bad = [(_rel(f), full, line) for f in _modules("nbconv", "tuner") for top, full, line, _ in _imports(f)
           if top in ("benchmarks", "reports") or full.startswith("nbconv.reports")]
    assert bad == []


def test_tuner_and_reports_are_imported_only_as_nbconv_subpackages():
    """A top-level `import tuner` would load a second copy with a second, empty registry."""
    bad = [(_rel(f), full, line) for f in _modules("nbconv", "tuner", "reports", "benchmarks", "tests")
           for top, full, line, _ in _imports(f)
           if top in ("tuner", "reports") and not _rel(f).startswith(f"{top}/")]
    assert bad == []


def test_installing_puts_only_nbconv_on_the_import_path():
    """pyproject lists every package folder of the library, each installed under `nbconv`."""
    import tomllib
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = cfg["package-dir"]
    assert all(name == "nbconv" or name.startswith("nbconv.") for name in cfg["packages"])
    listed = {(ROOT / dirs.get(name, name.replace(".", "/"))).resolve() for name in cfg["packages"]}
    folders = {f.parent.resolve() for d in ("nbconv", "tuner", "reports")
               for f in (ROOT / d).rglob("__init__.py")}
    assert folders == listed


def test_optional_heavy_packages_are_never_imported_at_module_level():
    bad = [(_rel(f), full, line) for f in _modules("nbconv", "tuner") for top, full, line, module_level
           in _imports(f) if module_level and top in ("torch", "keras", "matplotlib", "pandas", "tqdm")]
    assert bad == []


def test_environment_knobs_are_read_in_one_module():
    """Only nbconv/knobs.py names an NBCONV_* variable in code (docstrings aside)."""
    bad = []
    for f in _modules("nbconv", "tuner"):
        if _rel(f) == "nbconv/knobs.py":
            continue
        tree = ast.parse(f.read_text())
        scopes = (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, scopes) and n.body and isinstance(n.body[0], ast.Expr)
                      and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                    and node.value.startswith("NBCONV_")):
                bad.append((_rel(f), node.value, node.lineno))
    assert bad == []


def test_the_import_parser_sees_what_it_should():
    """Guard against a checker that passes because it finds nothing."""
    found = {full for f in _modules("nbconv/impls") for _, full, _, _ in _imports(f)}
    assert any(n.startswith("numba") for n in found)
    assert any(top == "numpy" for top, *_ in _imports(ROOT / "tuner" / "stats.py"))
    db_imports = _imports(ROOT / "tuner" / "db.py")
    assert any(top == "sqlite3" and module_level for top, _, _, module_level in db_imports)
    assert any(full == "nbconv.spec" for _, full, _, _ in _imports(ROOT / "nbconv" / "reference.py"))


LINE_BUDGET = 300     # lines per non-kernel module: past it, a module holds more than one idea


def test_non_kernel_modules_stay_under_the_line_budget():
    """Kernel modules (nbconv/impls/) are as long as their loops need; every other module of the
    library, the tuner, the reports and the benchmarks stays under LINE_BUDGET lines."""
    over = [(_rel(f), n) for f in _modules("nbconv", "tuner", "reports", "benchmarks")
            if not _rel(f).startswith("nbconv/impls/")
            and (n := len(f.read_text().splitlines())) > LINE_BUDGET]
    assert over == [], f"over {LINE_BUDGET} lines: split by concern"
