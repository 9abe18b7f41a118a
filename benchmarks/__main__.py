"""python -m benchmarks SUBCOMMAND [options], from the repository root; --help after a subcommand describes it."""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import benchmarks  # noqa: E402
from benchmarks import compare, profiling, quality, serving, speed  # noqa: E402


def baseline(argv: list[str]) -> None:
    """The TensorFlow tutorial's model alone (``benchmarks/baselines/tf_tutorial.py``; its own --help)."""
    from benchmarks.baselines import tf_tutorial

    tf_tutorial.main(argv)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=benchmarks.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for module in (compare, speed, profiling, quality, serving):
        module.register(commands)
    # The baseline parses its own options: everything after `baseline` goes to it.
    commands.add_parser(
        "baseline",
        add_help=False,
        help="the TensorFlow tutorial's model alone, for compare (options: python -m benchmarks baseline --help)",
    ).set_defaults(handler=baseline, passthrough=True)
    return root


def main(argv: list[str] | None = None) -> None:
    root = parser()
    args, rest = root.parse_known_args(argv)
    if getattr(args, "passthrough", False):
        args.handler(rest)
    elif rest:
        root.error(f"unrecognized arguments: {' '.join(rest)}")
    else:
        args.handler(args)


if __name__ == "__main__":
    main()
