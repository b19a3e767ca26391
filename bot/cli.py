"""The `herald` command. Each subcommand lives in its own module under `bot.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from bot.console import printable

#: subcommand -> (module, one-line help). Each module has `configure(parser)` and
#: `run(args) -> int`. Every module is imported to build the parser; running a command
#: whose module is missing from this build says so.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("bot.commands.serve", "run the web app and a worker (embedded Redis if none)"),
    "worker": ("bot.commands.worker", "run workers only, for production"),
    "status": ("bot.commands.status", "live workers, queue depth, oldest job, recent failures"),
    "web": ("bot.commands.web", "run the web app only, for production (beside `herald worker`)"),
    "render": ("bot.commands.render", "parse test reports and write Markdown, HTML, JSON"),
    "report": ("bot.commands.report", "inside a CI job: parse its test reports and publish them"),
    "replay": ("bot.commands.replay", "sign a saved webhook payload and post it"),
    "check": ("bot.commands.check", "show the configuration, what it can do, what it reaches"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="herald", description=__doc__)
    from bot import __version__

    parser.add_argument("--version", action="version", version=f"herald {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(_module=module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.configure(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        module = importlib.import_module(args._module)
    except ModuleNotFoundError as exc:
        if exc.name != args._module:
            raise
        print(printable(f"herald: '{args.command}' is not available in this build"),
              file=sys.stderr)
        return 2
    code: int = module.run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
