"""The embedded local Sprites server: a Sprites-compatible API on 127.0.0.1.

A development stand-in used when no Sprites token is configured, and the server
every integration test talks to. It is not a security sandbox: commands run as
the current user on this machine.
"""
