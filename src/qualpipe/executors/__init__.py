"""Executors run stages: ``local`` (built in) and any engine a plugin registers."""
