"""Exec sessions: processes that outlive their sockets, their output and scrollback."""
