get_config().InteractiveShellApp.extensions.append("sprites_jupyter")  # noqa: F821
