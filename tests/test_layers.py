"""Imports point down only: each module imports nothing from a layer above its own.

The layers, top to bottom (README, "How it works"):

5. adapters — ``digest.cli``, ``digest.web``, ``digest.scheduling``, ``digest.worker``,
   ``digest.demo``: they turn commands, requests, timers and queues into calls below;
4. the library's facade — ``digest.api``: the :class:`~digest.api.Digest` object whose
   methods are the public Python API (issue 12 §1), and what they return;
3. the sender — ``digest.sender`` (plan, deliver, settle), ``digest.sendtest`` and
   ``digest.desk`` (the editor's desk: approve, send, pause, cancel);
2. the parts — ingest, collect, compose, templating, delivery (the send loop, the
   ledger, the backends and their registry), editions, planning, …: every module not
   named in another layer;
1. the foundation — settings and newsletter config, schedule rules, models, the
   database, the app's wiring, errors;
0. ``subscribers``, which never imports ``digest``.

Every ``import`` in a module counts, at the top or inside a function.  One module
stands outside the layers: the package itself (``digest/__init__.py``), the public
entry point, which names the facade's types lazily (PEP 562) and so imports nothing
when it loads (:func:`test_import_digest_loads_only_the_package`).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

ADAPTERS = ("digest.cli", "digest.web", "digest.scheduling", "digest.worker", "digest.demo")
#: The facade (issue 12 §1): above the sender, below the adapters.
FACADE: tuple[str, ...] = ("digest.api",)
#: The public entry point: re-exports the facade's names, lazily; outside the layers.
ENTRY = "digest"
SENDER = ("digest.sender", "digest.sendtest", "digest.desk")
FOUNDATION = (
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
    if _within(module, FOUNDATION):
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
        if module == ENTRY:
            continue
        own = layer(module)
        for imported in sorted(_imports(path, module)):
            target = _known(imported, set(modules))
            if target is None or target in (module, ENTRY):
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
        ("digest.api", 4),
        ("digest.api.results", 4),
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


def test_the_adapters_call_the_facade() -> None:
    """The CLI, the web app and the scheduler go through ``Digest`` (issue 12 §1)."""
    modules = _all_modules()
    users = {
        m
        for m, path in modules.items()
        if _within(m, ADAPTERS) and any(_within(i, FACADE) for i in _imports(path, m))
    }
    for adapter in ("digest.cli", "digest.web", "digest.scheduling"):
        assert any(_within(m, (adapter,)) for m in users), adapter


def test_import_digest_loads_only_the_package() -> None:
    """``import digest`` is cheap: the public names load when first used."""
    code = (
        "import sys, digest\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('digest.', 'sqlalchemy')))\n"
        "print(loaded)\n"
        "for name in digest.__all__: getattr(digest, name)\n"
        "print(digest.Digest.__module__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.splitlines() == ["[]", "digest.api"]


def test_the_public_names_are_the_lazy_ones() -> None:
    import digest

    assert set(digest.__all__) - {"__version__"} == set(digest._EXPORTS)
    assert ROOT.joinpath("digest", "py.typed").is_file()
