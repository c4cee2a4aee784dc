"""Built-in plugin: the ``theme`` stage type (placeholder while being written)."""
