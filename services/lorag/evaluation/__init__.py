"""Quality evaluation of lorag: retrieval (``lorag eval retrieval``) and RAG answers (``lorag eval rag``).

:mod:`.metrics` holds the metric functions (pure Python), :mod:`.retrieval` and :mod:`.rag` the
harnesses that ingest a SQuAD-derived corpus through the normal ingest path of an in-process
platform and score its answers, :mod:`.report` the table, JSON and chart output.
"""
