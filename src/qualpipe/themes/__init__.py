"""Theme construction: the logic behind the ``theme`` stage (docs/themes.md).

- :mod:`~qualpipe.themes.rollup`: codings -> theme assignments (deductive roll-up through
  the codebook tree), theme counts and prevalence by participant attribute;
- :mod:`~qualpipe.themes.cooccurrence`: how often two codes or themes occur together;
- :mod:`~qualpipe.themes.text`: TF-IDF vectors (numpy) shared by quotes and proposals;
- :mod:`~qualpipe.themes.quotes`: illustrative quotes, labelled the way papers label them;
- :mod:`~qualpipe.themes.proposals`: inductive theme proposals (k-means over TF-IDF).

Everything here works on plain Python rows (dicts with the dataset columns), so each step
can be tested and reused without a pipeline. Machines propose; people decide: nothing here
changes a codebook or a coding.
"""
