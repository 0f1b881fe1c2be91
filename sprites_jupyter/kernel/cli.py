"""``sprites-jupyter kernel install|list|remove``: manage the sprite kernelspecs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .kernelspecs import DEFAULT_PYTHON, KernelSpecError, install, installed, remove


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sprites-jupyter",
        description="Jupyter kernels that run in a sprite (a Sprites sandbox).")
    commands = parser.add_subparsers(dest="command", required=True)
    kernel = commands.add_parser("kernel", help="install, list or remove sprite kernels")
    actions = kernel.add_subparsers(dest="action", required=True)

    add = actions.add_parser(
        "install", help="write a kernelspec whose kernel runs in a sprite",
        description="Write a kernelspec whose kernel runs in a sprite. Without --sprite, "
                    "each notebook chooses: its metadata's sprites.sprite, else "
                    "$SPRITES_KERNEL_SPRITE, else the sprite 'jupyter'.")
    add.add_argument("--sprite", default="", metavar="NAME",
                     help="the sprite the kernel runs in (created when missing)")
    add.add_argument("--python", default=DEFAULT_PYTHON, metavar="PATH",
                     help="the interpreter in the sprite (default: %(default)s); without "
                          "ipykernel, one is installed into a venv in the sprite")
    add.add_argument("--name", metavar="NAME",
                     help="the kernelspec's name (default: sprite-SPRITE, or sprite)")
    add.add_argument("--display-name", metavar="TEXT",
                     help="what the launcher shows (default: 'Python 3 (sprite NAME)')")
    where = add.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for this user only")
    where.add_argument("--sys-prefix", action="store_true",
                       help="install into this Python environment (sys.prefix)")
    where.add_argument("--prefix", metavar="DIR", help="install under DIR/share/jupyter")

    actions.add_parser("list", help="the installed sprite kernels")
    drop = actions.add_parser("remove", help="remove a sprite kernelspec")
    drop.add_argument("name", help="the kernelspec's name (see `kernel list`)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.action == "install":
            prefix = sys.prefix if args.sys_prefix else args.prefix
            folder = install(sprite=args.sprite, python=args.python, name=args.name,
                             display_name=args.display_name, user=args.user, prefix=prefix)
            print(f"Installed kernelspec in {folder}")
        elif args.action == "list":
            specs = installed()
            if not specs:
                print("No sprite kernels: add one with `sprites-jupyter kernel install`")
            for spec in specs:
                sprite = spec.sprite or "(per notebook)"
                print(f"{spec.name}\t{spec.display_name}\tsprite: {sprite}\tpython: "
                      f"{spec.python}\t{spec.resource_dir}")
        else:
            print(f"Removed {remove(args.name)}")
    except KernelSpecError as error:
        print(f"sprites-jupyter: {error}", file=sys.stderr)
        return 1
    return 0
