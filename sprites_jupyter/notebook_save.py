"""Jupyter's pre-save hook that keeps the tour notebooks' outputs out of the checkout.

JupyterLab autosaves every output into the notebook file (and widget state, one-time
sign-in links of ``%sprite open --embed``), which for the notebooks of this repository
would leave the checkout full of outputs to commit by accident. The README's JupyterLab
command puts the checkout's ``jupyter-config/`` on ``JUPYTER_CONFIG_PATH``, whose
``jupyter_server_config.d`` loads this module as a server extension (an editable install
ships no data files); it registers a pre-save hook that strips only notebooks whose
metadata asks for it, as the repository's own do::

    "sprites_jupyter": {"strip_outputs_on_save": true}

Outputs stay on the page; only the file keeps the cells alone. Any other notebook is
saved as it is.
"""

from __future__ import annotations

from typing import Any

METADATA_KEY = "sprites_jupyter"
STRIP_FLAG = "strip_outputs_on_save"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": __name__}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    serverapp.contents_manager.register_pre_save_hook(strip_outputs_on_save)


def strip_outputs_on_save(model: dict[str, Any], **_context: Any) -> None:
    """Clear outputs, execution counts and widget state of a notebook that asks for it
    (Jupyter calls this with ``model``, ``path`` and ``contents_manager``)."""
    notebook = model.get("content") if model.get("type") == "notebook" else None
    if not isinstance(notebook, dict):
        return
    metadata = notebook.get("metadata") or {}
    if not (metadata.get(METADATA_KEY) or {}).get(STRIP_FLAG):
        return
    for cell in notebook.get("cells") or []:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    metadata.pop("widgets", None)
