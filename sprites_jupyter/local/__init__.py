"""The embedded local Sprites server: a Sprites-compatible API on 127.0.0.1.

Used when no Sprites token is configured, and the server every integration test
talks to. Each sprite runs in a bubblewrap sandbox of its own (``runtime/sandbox/``);
where none can be made, in a directory on the host, which protects nothing.
"""
