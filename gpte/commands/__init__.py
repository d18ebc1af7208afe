"""Command-line subcommands beyond the core ones in gpte.cli."""
