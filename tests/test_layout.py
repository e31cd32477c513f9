"""The package's tree tells its flows apart and its modules import in one direction: no cycle
(retrieval and multi_device used to import each other), and no test fixture ships in it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "eedi_utils"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules `path` imports, at any depth of its code (lazy imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module in modules:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names} & modules
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names} & modules
    return found


def test_no_import_cycle_in_the_package() -> None:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imports(path, set(paths)) - {name} for name, path in paths.items()}
    done: set[str] = set()

    def visit(name: str, stack: list[str]) -> None:
        if name in stack:
            raise AssertionError(" -> ".join(stack[stack.index(name) :] + [name]))
        if name in done:
            return
        for imported in sorted(graph[name]):
            if not imported.startswith(name + "."):  # a package importing its own modules
                visit(imported, [*stack, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    assert "eedi_utils.retrieval" not in graph["eedi_utils.multi_device"]
    assert "eedi_utils.pipeline" not in graph["eedi_utils.train.retriever.run"]


def test_the_flows_have_their_own_folders_and_fixtures_stay_in_tests() -> None:
    assert (PACKAGE / "train" / "retriever" / "run.py").is_file()  # eedi train
    assert (PACKAGE / "train" / "reranker" / "run.py").is_file()  # eedi train-reranker
    assert (PACKAGE / "rerank" / "stage.py").is_file()  # the LLM stage at inference
    assert not (PACKAGE / "reranker").exists() and not (PACKAGE / "tiny_models.py").exists()
