"""The one-way import rule of ARCHITECTURE.md: each room imports only the rooms below it."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# room -> the rooms it must never import (at module level or inside a function)
FORBIDDEN = {
    "otzoo": ("training",),
    "training.run": ("training.evaluate", "training.release"),
    "training.evaluate": ("training.release",),
}


# otzoo.models, timm's layering: each private module imports only the siblings named here
MODEL_LAYERS = {
    "_cfg": set(), "_weights": set(), "_transforms": set(),  # the floor: the weight record, files, transforms
    "_registry": {"_cfg"},
    "_hub": {"_cfg", "_registry", "_transforms", "_weights"},
    "_builder": {"_hub", "_registry", "_weights"},
    "resnet_cifar": {"_builder", "_registry"}, "timm_models": {"_builder", "_registry"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set:
    """Absolute names of every module ``path`` imports, relative imports resolved."""
    return imports_of(module_name(path), path.read_text(), is_package=path.name == "__init__.py")


def imports_of(module: str, source: str, is_package: bool = False) -> set:
    package = module.split(".") if is_package else module.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            imported = ".".join(base + ([node.module] if node.module else []))
            names.add(imported)
            names.update(f"{imported}.{alias.name}" for alias in node.names)
    return names


def room_files(room: str) -> list:
    return sorted((REPO / room.replace(".", "/")).rglob("*.py"))


def inside(name: str, room: str) -> bool:
    return name == room or name.startswith(room + ".")


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_rooms_import_only_downward(room):
    assert room_files(room), f"no modules found under {room}"
    broken = [f"{module_name(path)} imports {name}" for path in room_files(room)
              for name in sorted(imported_modules(path)) if any(inside(name, up) for up in FORBIDDEN[room])]
    assert not broken, "upward imports (see ARCHITECTURE.md):\n" + "\n".join(broken)


def test_otzoo_models_modules_import_only_the_layers_below():
    models = REPO / "otzoo" / "models"
    assert {p.stem for p in models.glob("*.py")} - {"__init__"} == set(MODEL_LAYERS), "a new module: add it here"
    for stem, allowed in MODEL_LAYERS.items():
        siblings = {name.split(".")[2] for name in imported_modules(models / f"{stem}.py")
                    if name.startswith("otzoo.models.") and name.count(".") >= 2}
        assert siblings <= allowed, f"otzoo.models.{stem} imports {sorted(siblings - allowed)}"


def test_the_rule_sees_relative_and_lazy_imports():
    """The checker itself: relative imports resolve to the room they name, inside functions too."""
    assert "training.release.export" in imports_of("training.run.x", "def f():\n    from ..release import export\n")
    assert "training.run.device" in imports_of("training.evaluate.x", "from ..run.device import autocast\n")
    assert "training.run.device" in imports_of("training.run", "from .device import autocast\n", is_package=True)
