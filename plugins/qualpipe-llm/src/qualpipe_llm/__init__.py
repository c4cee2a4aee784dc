"""qualpipe-llm: an LLM coder for qualpipe's ``code`` stage.

Any OpenAI-compatible chat-completions endpoint works: a local Ollama, vLLM or
llama.cpp server, or a hosted API. Installing the package is all it takes: qualpipe
finds :mod:`qualpipe_llm.plugin` through the ``qualpipe`` entry-point group, and
pipelines choose the coder by name::

    - id: code
      uses: code
      with:
        coders:
          - {name: llm, model: "llama3.1:8b-instruct-q4_K_M"}
"""

from __future__ import annotations

__version__ = "0.1.0"
