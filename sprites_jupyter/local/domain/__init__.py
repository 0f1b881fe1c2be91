"""The operations on a sprite, as plain Python: what they stop, write and restart.

Handlers in ``api/`` parse a request, call one of these and serialize what comes back;
these raise the domain errors of ``local/errors.py``, never an HTTP status.
"""
