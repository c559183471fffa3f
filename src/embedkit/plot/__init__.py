"""Plots of embeddings: 2-D maps, word arrows and similarity heatmaps (``pip install 'embedkit[plot]'``).

::

    project(vectors, "pca" | "tsne" | "umap", seed=0)   -> float32 (n, 2) coordinates
    embedding_map(data, labels, method="tsne")          -> matplotlib Figure (PNG/SVG/PDF)
    embedding_map_plotly(data, labels)                  -> plotly Figure (HTML, hover texts)
    word_arrows(words, [("man", "king"), ...])          -> matplotlib Figure
    similarity_heatmap(texts, model=...)                -> matplotlib Figure

``data`` is a ``(n, d)`` array, a list of texts with ``model=`` (embedded through
the one job path, :func:`embedkit.jobs.embed.embed`, so the cache answers a second
plot of the same texts), or an :class:`~embedkit.frame.EmbeddedFrame` (``labels``
may then name a column). Every function returns its Figure and, given ``path=``,
writes it atomically. Matplotlib runs on the Agg canvas only (no window, no
``plt.show``); t-SNE and UMAP take a ``seed`` and give the same map for it.

The ``plot`` extra holds matplotlib and scikit-learn; UMAP needs ``umap-learn``
and the HTML maps ``plotly``, each installed on its own.
"""

from __future__ import annotations

from embedkit.plot._data import METHODS, Method, project
from embedkit.plot.figures import embedding_map, save, similarity_heatmap, word_arrows
from embedkit.plot.interactive import embedding_map_plotly

__all__ = [
    "METHODS",
    "Method",
    "embedding_map",
    "embedding_map_plotly",
    "project",
    "save",
    "similarity_heatmap",
    "word_arrows",
]
