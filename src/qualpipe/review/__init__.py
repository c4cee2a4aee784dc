"""The review app: step through anonymisation findings, codings and themes in a browser.

``qualpipe review PIPELINE`` serves it on 127.0.0.1 (docs/review.md). The parts:
``data`` (reads the anonymised datasets of the latest run, refuses sensitive ones),
``session`` (checks and appends decisions, runs the pipeline again in a thread),
``app`` (Flask pages and actions), ``server`` (werkzeug on 127.0.0.1), ``command``
(the CLI command). Flask is optional (``pip install 'qualpipe[review]'``): only
``app`` and ``server`` import it.
"""
