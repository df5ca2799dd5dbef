"""CLI sub-commands. Each module: `register(subparsers)` adds its parser(s) and sets
`handler=<function(args) -> int>` with `set_defaults`; `run` functions import heavy code lazily."""
