"""What a sprite kernelspec's ``argv`` runs when something starts it without Jupyter's
kernel provisioner (VS Code's own kernel finder, an old jupyter_client): a clear
refusal, rather than a kernel quietly running on this machine under the sprite's name."""

import sys

MESSAGE = ("sprites-jupyter: this kernel runs in a sprite and needs Jupyter's kernel "
           "provisioner 'sprites-provisioner' (jupyter_client 7+): start it from JupyterLab, "
           "Notebook 7 or a Jupyter server (in VS Code: Select Kernel -> Existing Jupyter "
           "Server) where sprites-jupyter is installed")


def main() -> int:
    print(MESSAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
