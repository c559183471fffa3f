"""Jobs: the one text->vectors path and what it reads and writes.

``embed`` (EmbedJob, embed, embed_to_npy), ``cache`` (the SQLite cache = checkpoint),
``progress`` (bars), ``readers`` (corpus files, templates, tables), ``writers``
(``.npy`` and the one Parquet codec).
"""
