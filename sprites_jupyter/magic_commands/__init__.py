"""The ``%sprite`` subcommands, one module per area, and the grammar that parses them."""
