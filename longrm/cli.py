"""``longrm <stage> --config FILE [--section.key VALUE ...]``.

Stages are the modules of the ``stages`` package that define ``Config`` (a pydantic model), ``run(cfg)`` and a
one-line ``HELP``; ``longrm --help`` lists them and ``longrm <stage> --help`` prints every config key with its
type and default.  Under torchrun use ``torchrun --nproc_per_node N -m longrm <stage> ...``.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
from types import ModuleType

from .config import ConfigError, describe_config, load_config


def discover_stages() -> dict[str, ModuleType]:
    import stages

    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(stages.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"stages.{info.name}")
        if hasattr(mod, "Config") and hasattr(mod, "run"):
            found[getattr(mod, "NAME", info.name)] = mod
    return found


def _usage(stages: dict[str, ModuleType]) -> str:
    lines = ["usage: longrm <stage> --config FILE [--section.key VALUE ...]", "", "stages:"]
    width = max((len(n) for n in stages), default=0)
    for name, mod in stages.items():
        lines.append(f"  {name.ljust(width)}  {getattr(mod, 'HELP', '')}")
    lines += ["", "'longrm <stage> --help' lists the stage's config keys and defaults."]
    return "\n".join(lines)


def _stage_help(name: str, mod: ModuleType) -> str:
    rows = describe_config(mod.Config)
    lines = [f"usage: longrm {name} --config FILE [--section.key VALUE ...]", "", getattr(mod, "HELP", ""), "",
             "config keys (type, default):"]
    kw = max(len(r[0]) for r in rows) if rows else 0
    for key, tp, default, desc in rows:
        lines.append(f"  {key.ljust(kw)}  {tp} = {default}" + (f"\n  {' ' * kw}    {desc}" if desc else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stages = discover_stages()
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage(stages))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in stages:
        print(f"longrm: unknown stage '{name}'\n\n{_usage(stages)}", file=sys.stderr)
        return 2
    mod = stages[name]
    if any(a in ("-h", "--help") for a in rest):
        print(_stage_help(name, mod))
        return 0
    config_path = None
    if "--config" in rest:
        i = rest.index("--config")
        if i + 1 >= len(rest):
            print("longrm: --config needs a file", file=sys.stderr)
            return 2
        config_path = rest[i + 1]
        rest = rest[:i] + rest[i + 2:]
    else:
        for i, a in enumerate(rest):
            if a.startswith("--config="):
                config_path = a.split("=", 1)[1]
                rest = rest[:i] + rest[i + 1:]
                break
    try:
        cfg = load_config(mod.Config, config_path, rest)
    except ConfigError as e:
        print(f"longrm {name}: {e}", file=sys.stderr)
        return 2
    result = mod.run(cfg)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
