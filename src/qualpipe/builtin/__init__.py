"""Built-in plugins: registered through the same hooks as third-party plugins.

Each module here is one plugin (see ``qualpipe.plugins.BUILTIN_PLUGINS``); any of them
can be switched off with ``QUALPIPE_DISABLE_PLUGINS=qualpipe.builtin.NAME``.
"""
