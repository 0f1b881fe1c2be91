"""A Jupyter kernel whose ipykernel runs in a sprite.

:class:`~.provisioner.SpriteProvisioner` is the ``jupyter_client`` kernel provisioner a
kernelspec names (``sprites-jupyter kernel install`` writes one); Jupyter does the rest.
"""
