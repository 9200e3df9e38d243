"""Imports point down only: each module imports nothing from a layer above its own.

The layers, top to bottom (README, "How it works"):

5. adapters — ``digest.cli``, ``digest.web``, ``digest.scheduling``, ``digest.worker``,
   ``digest.demo``: they turn commands, requests, timers and queues into calls below;
4. the library's facade (:data:`FACADE`, the ``Digest`` API of issue 12 §1);
3. the sender — ``digest.sender`` (plan, deliver, settle), ``digest.sendtest`` and
   ``digest.desk`` (the editor's desk: approve, send, pause, cancel);
2. the parts — ingest, collect, compose, templating, delivery (the send loop, the
   ledger, the backends and their registry), editions, planning, …: every module not
   named in another layer;
1. the foundation — settings and newsletter config, schedule rules, models, the
   database, the app's wiring, errors;
0. ``subscribers``, which never imports ``digest``.

Every ``import`` in a module counts, at the top or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

ADAPTERS = ("digest.cli", "digest.web", "digest.scheduling", "digest.worker", "digest.demo")
#: The facade's modules, once it exists (issue 12 §1): above the sender, below the adapters.
FACADE: tuple[str, ...] = ()
SENDER = ("digest.sender", "digest.sendtest", "digest.desk")
FOUNDATION = (
    "digest",  # the package itself (its __init__)
    "digest.errors",
    "digest.config",
    "digest.schedule_rules",
    "digest.models",
    "digest.db",
    "digest.app",
    "digest.signals",
    "digest.migrations",
)
LAYER_NAMES = {
    0: "subscribers",
    1: "foundation",
    2: "parts",
    3: "sender",
    4: "facade",
    5: "adapters",
}


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def layer(module: str) -> int:
    if module == "subscribers" or module.startswith("subscribers."):
        return 0
    if _within(module, ADAPTERS):
        return 5
    if _within(module, FACADE):
        return 4
    if _within(module, SENDER):
        return 3
    if module == "digest" or _within(module, FOUNDATION[1:]):
        return 1
    return 2


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports from digest or subscribers (relative ones resolved)."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # ``from digest import sender`` imports the module digest.sender
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in {"digest", "subscribers"}}


def _known(name: str, modules: set[str]) -> str | None:
    """``name`` if it is one of our modules (not a class or function imported by name)."""
    return name if name in modules else None


def _all_modules() -> dict[str, Path]:
    files = [*ROOT.joinpath("digest").rglob("*.py"), *ROOT.joinpath("subscribers").rglob("*.py")]
    return {_module_name(f): f for f in files}


def upward_imports() -> list[str]:
    modules = _all_modules()
    problems = []
    for module, path in sorted(modules.items()):
        own = layer(module)
        for imported in sorted(_imports(path, module)):
            target = _known(imported, set(modules))
            if target is None or target == module:
                continue
            if layer(target) > own:
                problems.append(
                    f"{module} ({LAYER_NAMES[own]}) imports {target} ({LAYER_NAMES[layer(target)]})"
                )
    return problems


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert upward_imports() == []


def test_the_sender_stands_below_the_scheduler_the_cli_and_the_web() -> None:
    modules = _all_modules()
    for module in SENDER:
        imported = _imports(modules[module], module)
        assert not {m for m in imported if _within(m, ADAPTERS)}, module


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("subscribers.service", 0),
        ("digest.config", 1),
        ("digest.schedule_rules", 1),
        ("digest.delivery.loop", 2),
        ("digest.delivery.waves", 2),
        ("digest.sender", 3),
        ("digest.scheduling.runs", 5),
        ("digest.cli.send", 5),
    ],
)
def test_layers_are_assigned_as_documented(module: str, expected: int) -> None:
    assert layer(module) == expected


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The walker finds imports at the top and inside functions, relative ones too."""
    source = tmp_path / "probe.py"
    source.write_text(
        "from digest.delivery import ledger\n"
        "def f():\n"
        "    from digest.scheduling import runs\n"
        "    from ..cli import send\n"
    )
    found = _imports(source, "digest.delivery.probe")
    assert {"digest.delivery.ledger", "digest.scheduling.runs", "digest.cli.send"} <= found
