"""The packages' dependencies run one way (docs/architecture.md): checked on the source, so a new import that
breaks the layering fails here before anything runs."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("common", "runtime", "demo", "evaluation", "training", "export")
# What each package may import from the project, besides itself (docs/architecture.md draws these arrows).
ALLOWED = {
    "common": set(),
    "runtime": {"common"},
    "demo": {"common", "runtime"},
    "evaluation": {"common", "runtime"},
    "training": {"common", "evaluation"},
    "export": {"common", "training"},
}
# evaluation's one module that knows training runs exist: eval-gan samples a run folder through this module.
EVALUATION_CLI_MAY_IMPORT = {"training.sampling"}
# Training reaches into evaluation only to monitor itself: score samples, plot, name the protocols.
TRAINING_MAY_IMPORT = {
    "evaluation",
    "evaluation.figures",
    "evaluation.protocols",
    "evaluation.samples",
    "evaluation.scoring",
}
# Export reaches into evaluation only for the proxy MNIST classifier, which the classifier DRS head holds.
EXPORT_MAY_IMPORT = {"evaluation.proxy_classifier"}
NO_TORCH = ("common", "runtime", "demo")


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code (lazy imports count), as absolute names;
    `from package import name` counts both the package and package.name (which may be a module)."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def project_graph(root: Path = REPO) -> dict[str, set[str]]:
    """module -> the project modules it imports."""
    paths = {module_name(path, root): path for package in PACKAGES for path in (root / package).rglob("*.py")}
    return {
        name: {target for target in imports_of(path, root) if target in paths and target != name}
        for name, path in paths.items()
    }


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, targets in graph.items():
        package = module.split(".")[0]
        for target in targets:
            target_package = target.split(".")[0]
            if target_package == package:
                continue
            if package == "training" and target_package == "evaluation":
                allowed = target in TRAINING_MAY_IMPORT
            elif package == "export" and target_package == "evaluation":
                allowed = target in EXPORT_MAY_IMPORT
            else:
                allowed = target_package in ALLOWED[package] or (
                    module == "evaluation.cli" and target in EVALUATION_CLI_MAY_IMPORT
                )
            if not allowed:
                wrong.append(f"{module} -> {target}")
    return sorted(wrong)


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_each_package_imports_only_the_packages_below_it():
    wrong = layering_violations(project_graph())
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_import_cycle_between_modules():
    assert import_cycles(project_graph()) == []


def test_the_torch_free_packages_never_import_torch_at_import_time():
    """common/, runtime/ and demo/ run on the base install; common/mnist.py alone imports torchvision, inside
    the function that reads MNIST (the train extra), never at import."""
    for package in NO_TORCH:
        for path in (REPO / package).rglob("*.py"):
            module_level = ast.parse(path.read_text()).body
            names = {
                alias.name.split(".")[0]
                for node in module_level
                if isinstance(node, ast.Import)
                for alias in node.names
            }
            names |= {(node.module or "").split(".")[0] for node in module_level if isinstance(node, ast.ImportFrom)}
            if package != "common":  # runtime/ and demo/: not even lazily
                names = {name.split(".")[0] for name in imports_of(path, REPO)}
            assert not names & {"torch", "torchvision"}, path.relative_to(REPO)


def test_the_checks_catch_a_wrong_import_and_a_cycle(tmp_path):
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "runtime" / "leak.py").write_text("from training.config import TrainConfig\n")
    (tmp_path / "training" / "config.py").write_text("from runtime import leak\n")
    graph = project_graph(tmp_path)
    assert graph == {"runtime.leak": {"training.config"}, "training.config": {"runtime.leak"}}
    assert layering_violations(graph) == ["runtime.leak -> training.config", "training.config -> runtime.leak"]
    assert import_cycles(graph) == [["runtime.leak", "training.config"]]
