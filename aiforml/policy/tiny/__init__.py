"""The tiny offline policy: its corpus, tokenizer, warm start and the threads it builds on.

``build.py`` (corpus -> tokenizer -> small Mistral -> SFT warm start, cached) is the entry;
``corpus.py``, ``grammar.py`` and ``mistakes.py`` write the warm-start programs,
``tokenizer.py`` trains its BPE tokenizer, ``threads.py`` picks the CPU threads it trains on.
"""
