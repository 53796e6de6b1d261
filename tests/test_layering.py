"""The package's imports point one way: down the layer order written in
docs/ARCHITECTURE.md (section "Layers"), with no cycle between modules.
Imports inside functions count as much as those at the top of a file: a
lazy import is a dependency too."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hashlookup"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"

# `from a.b import c` / `import a.b` / `cimport` in a .pyx or .pxd file.
_PYX_IMPORT = re.compile(
    r"^\s*(?:from\s+([\w.]+)\s+c?import\s+\(?([\w\s,]+?)\)?|c?import\s+([\w.]+))\s*(?:#.*)?$",
    re.M,
)


def read_layers() -> list[tuple[str, list[str]]]:
    """[(layer name, module prefixes)], top layer first, from the block
    between the `layers:` markers of docs/ARCHITECTURE.md."""
    text = ARCHITECTURE.read_text()
    m = re.search(r"<!-- layers: -->\n```text\n(.*?)```", text, re.S)
    assert m, "docs/ARCHITECTURE.md has no layer table (<!-- layers: --> block)"
    layers = []
    for line in m.group(1).splitlines():
        if not line.strip():
            continue
        name, _, modules = line.partition(":")
        layers.append((name.strip(), modules.split()))
    return layers


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {
        module_name(p): p
        for p in sorted(PACKAGE.rglob("*"))
        if p.suffix in (".py", ".pyx") and "__pycache__" not in p.parts
    }


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that `name` is or lies in."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(mod: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Package modules that `mod` imports, anywhere in the file."""
    targets: list[str] = []
    is_package = path.name == "__init__.py"
    if path.suffix == ".pyx":
        for m in _PYX_IMPORT.finditer(path.read_text()):
            base, names, plain = m.groups()
            if plain:
                targets.append(plain)
            else:
                targets += [
                    f"{base}.{n.strip()}" for n in names.split(",") if n.strip()
                ]
                targets.append(base)
    else:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = mod if is_package else mod.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                # `from pkg import sub` imports the submodule; `from mod
                # import name` the module itself.
                for a in node.names:
                    full = f"{base}.{a.name}"
                    targets.append(full if full in modules else base)
    found = {_resolve(t, modules) for t in targets if t.split(".")[0] == "hashlookup"}
    found.discard(None)
    found.discard(mod)
    return {t for t in found if t is not None}


def layer_of(mod: str, layers: list[tuple[str, list[str]]]) -> int:
    best, best_len = -1, -1
    for i, (_, prefixes) in enumerate(layers):
        for p in prefixes:
            if (mod == p or mod.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    return best


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def test_every_module_has_a_layer() -> None:
    layers = read_layers()
    missing = [m for m in all_modules() if layer_of(m, layers) < 0]
    assert not missing, f"modules in no layer of docs/ARCHITECTURE.md: {missing}"


def test_imports_point_down() -> None:
    layers = read_layers()
    upward = []
    for mod, deps in graph().items():
        mine = layer_of(mod, layers)
        for dep in sorted(deps):
            theirs = layer_of(dep, layers)
            if theirs < mine:
                upward.append(
                    f"{mod} ({layers[mine][0]}) imports {dep} ({layers[theirs][0]})"
                )
    assert not upward, "imports up the layer order:\n" + "\n".join(upward)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder_finds_cycles() -> None:
    # The checks above pass on a clean tree; make sure they could fail.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    layers = [("top", ["x.cli"]), ("base", ["x"])]
    assert layer_of("x.cli.run", layers) == 0 and layer_of("x.errors", layers) == 1
