"""The sprite's persistent Python session: %%sprite_python cells, their lifecycle, the
agent's protocol, and moving variables between the kernel and the session."""
