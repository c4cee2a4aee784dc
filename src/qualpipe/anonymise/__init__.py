"""Anonymisation: recognisers find identifiers, the engine replaces them consistently.

``recognisers.py`` is the API plugins implement (``qualpipe_register_recognisers``);
``patterns.py``, ``gazetteer.py`` and ``context.py`` are the built-in recognisers;
``engine.py`` resolves overlaps and propagates every found entity to all its mentions in
the corpus; ``replace.py`` and ``keyfile.py`` turn entities into placeholders or
pseudonyms and keep the key apart from the run; ``review.py`` writes the review page.
"""
