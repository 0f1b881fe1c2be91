"""The ``%sprite`` subcommands, one module per area, each declared beside its handler
(:mod:`.registry`), and the grammar read from those declarations (:mod:`.parsing`)."""
