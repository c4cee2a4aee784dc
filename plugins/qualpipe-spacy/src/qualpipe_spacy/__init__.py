"""qualpipe-spacy: a spaCy named-entity recogniser for qualpipe's ``anonymise`` stage.

Installing the package is all it takes: qualpipe finds :mod:`qualpipe_spacy.plugin`
through the ``qualpipe`` entry-point group, and pipelines choose the recogniser by name::

    - id: anonymise
      uses: anonymise
      with:
        recognisers: [patterns, context, gazetteer, spacy-ner]
"""

from __future__ import annotations

__version__ = "0.1.0"
