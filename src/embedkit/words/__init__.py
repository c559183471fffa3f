"""Word vectors: the WordVectors API, pooling, file formats, tokenizers, corpora, GloVe, evaluation.

``vectors`` (WordVectors), ``ranking`` (top-k with the query words left out, on
``search.kernels``), ``embedder`` (StaticEmbedder: pooled sentence vectors), ``saved``
(its native folder, one ``_folder`` write), ``pooling``, ``files`` (word2vec/GloVe
formats), ``tokenize``, ``corpus`` (streamed training corpora), ``glove`` (GloVe
fitting), ``evaluate`` (analogies, word pairs).
"""
