"""Programs that run inside a sprite on our behalf (standard library only, Python 3.8+).

Each is sent to the sprite's ``python3`` through the public exec API (on stdin), so
they work the same on the real service and on the local server.
"""
