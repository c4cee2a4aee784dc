"""qualpipe-nvivo-classification: an NVivo case classification sheet as an export format.

Installing the package is all it takes: qualpipe finds
:mod:`qualpipe_nvivo_classification.plugin` through the ``qualpipe`` entry-point group,
and pipelines ask for the sheet by name::

    - id: export
      uses: export
      with:
        formats: [qdpx, nvivo-classification]
"""

from __future__ import annotations

__version__ = "0.1.0"
