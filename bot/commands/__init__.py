"""One module per `herald` subcommand: `configure(parser)` and `run(args) -> int`."""
