"""One sprite's machine: the bubblewrap command, host ids, limits, the init and its channel."""
