"""The ``neuroplug`` command line (also ``python -m neuroplug``).

Subcommands: ``train`` (the main job), ``plugins`` (what is installed) and
``new-plugin`` (write a plugin distribution to start from).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._version import __version__

__all__ = ["main", "build_parser", "format_plugins"]


def format_plugins(manager=None) -> tuple[str, bool]:
    """Describe every plugin, where it came from and what it registered.

    Returns ``(text, ok)``; ``ok`` is false when a plugin failed to load or
    when two plugins register the same name (the name is unusable until one
    of them is blocked).
    """
    import warnings

    from .plugins import PluginWarning, get_plugin_manager

    with warnings.catch_warnings():
        # Failures are reported in the listing itself, not as warnings.
        warnings.simplefilter("ignore", PluginWarning)
        manager = manager or get_plugin_manager()
        infos = manager.info()
    lines = []
    ok = True
    for info in infos:
        lines.append(f"{info.name}  [{info.source}]")
        if info.blocked:
            lines.append("    blocked by NEUROPLUG_DISABLE_PLUGINS")
        elif info.error is not None:
            ok = False
            cause = info.error.__cause__
            lines.append(f"    FAILED: {info.error}")
            if cause is not None and str(cause) not in str(info.error):
                lines.append(f"    caused by {type(cause).__name__}: {cause}")
        else:
            parts = [
                f"{kind}s: {', '.join(names)}"
                for kind, names in info.registered.items()
                if names
            ]
            lines.append(
                "    " + ("; ".join(parts) if parts else "(registers nothing)")
            )
            for kind, names in info.clashes.items():
                ok = False
                for name in names:
                    others = [
                        p
                        for p in manager.registries[kind].contenders(name)
                        if p != info.name
                    ]
                    lines.append(
                        f"    CLASH: {kind} {name!r} is also registered by {', '.join(repr(p) for p in others)}; "
                        "unusable until one is blocked with NEUROPLUG_DISABLE_PLUGINS"
                    )
    return "\n".join(lines), ok


def _cmd_plugins(args: argparse.Namespace) -> int:
    text, ok = format_plugins()
    print(text)
    return 0 if ok else 1


def _cmd_new_plugin(args: argparse.Namespace) -> int:
    from ._newplugin import write_plugin

    try:
        root = write_plugin(args.name, args.kind, args.directory)
    except (ValueError, FileExistsError) as exc:
        print(f"neuroplug new-plugin: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"Wrote {root}. Next: cd {root} && pip install -e . && python -m pytest tests"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``neuroplug`` command."""
    parser = argparse.ArgumentParser(
        prog="neuroplug",
        description="Convolutional nets and deep belief nets, scikit-learn style.",
    )
    parser.add_argument(
        "--version", action="version", version=f"neuroplug {__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_plugins = sub.add_parser(
        "plugins", help="list plugins, where they came from and what they registered"
    )
    p_plugins.set_defaults(func=_cmd_plugins)
    from ._newplugin import KINDS

    p_new = sub.add_parser(
        "new-plugin",
        help="write a ready-to-install plugin distribution (pyproject, module, tests)",
    )
    p_new.add_argument(
        "name", metavar="NAME", help="plugin and registered name, e.g. prelu"
    )
    p_new.add_argument(
        "--kind",
        required=True,
        choices=KINDS,
        help="what the plugin registers (callback: where the hook exists)",
    )
    p_new.add_argument(
        "--directory",
        default=".",
        help="where to create neuroplug-NAME/ (default: here)",
    )
    p_new.set_defaults(func=_cmd_new_plugin)
    try:
        from .train import add_train_parser, run_train
    except ImportError:  # pragma: no cover - only while the train command is absent
        pass
    else:
        p_train = add_train_parser(sub)
        if p_train is not None and p_train.get_default("func") is None:
            p_train.set_defaults(func=run_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
