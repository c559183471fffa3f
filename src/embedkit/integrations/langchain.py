"""LangChain's ``Embeddings`` interface over any embedkit model.

::

    from langchain_core.vectorstores import InMemoryVectorStore
    from embedkit.integrations.langchain import EmbedkitEmbeddings

    store = InMemoryVectorStore(EmbedkitEmbeddings(model="hashing?dim=256"))
    store.add_texts(["Great dog food", "Spicy hot sauce"])
    store.similarity_search("pet food", k=1)

* ``embed_documents(texts)`` goes through the one job path
  (:func:`embedkit.embed`: validation, batches, the cache keyed by the model's
  spec, progress); ``embed_query(text)`` through :func:`embedkit.protocol.embed_queries`,
  so a model with a query prompt (E5, a sentence-transformers prompt) uses it.
* Vectors come back as plain Python ``float`` lists, as LangChain expects
  (``numpy.float32`` is not a ``float``).
* ``aembed_documents`` / ``aembed_query`` run the same code in LangChain's executor.
* The model is built once, in ``__init__`` (``model=None``: ``$EMBEDKIT_MODEL`` or
  MiniLM), so a bad spec fails at once.

Needs ``langchain-core``: ``pip install 'embedkit[langchain]'``.
"""

from __future__ import annotations

from embedkit.errors import ConfigError, MissingDependencyError
from embedkit.jobs.cache import CacheOption
from embedkit.jobs.embed import DEFAULT_BATCH_SIZE, ModelLike, embed
from embedkit.protocol import Embedder, checked_matrix, embed_queries
from embedkit.registry import load

try:
    from langchain_core.embeddings import Embeddings
    from langchain_core.runnables.config import run_in_executor
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingDependencyError(
        "'langchain_core' is required for embedkit.integrations.langchain; install it with "
        "pip install 'embedkit[langchain]'"
    ) from exc

__all__ = ["EmbedkitEmbeddings"]


class EmbedkitEmbeddings(Embeddings):
    """``Embeddings`` backed by ``model`` (a spec, a config dict or an Embedder).

    ``cache``: ``True`` (the default cache), ``False``, a path or an
    :class:`~embedkit.jobs.cache.EmbeddingCache`; documents only (queries are
    embedded directly). ``progress``: a bar for ``embed_documents`` (off by default).
    """

    def __init__(
        self,
        model: ModelLike = None,
        *,
        cache: CacheOption = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool | None = False,
    ) -> None:
        self.embedder: Embedder = load(model)
        self.cache = cache
        self.batch_size = batch_size
        self.progress = progress

    @property
    def spec(self) -> str:
        """The spec of the model: what the vectors in a store are tied to."""
        return self.embedder.spec

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def _dim(self) -> int:
        return self.embedder.dim

    def __repr__(self) -> str:
        return f"EmbedkitEmbeddings(model={self.spec!r})"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One ``list[float]`` of ``dim`` values per text, in order."""
        if isinstance(texts, str):
            raise ConfigError("embed_documents takes a list of texts; use embed_query for one")
        vectors = embed(
            list(texts),
            self.embedder,
            cache=self.cache,
            batch_size=self.batch_size,
            progress=self.progress,
        )
        rows: list[list[float]] = vectors.tolist()
        return rows

    def embed_query(self, text: str) -> list[float]:
        """The query vector of ``text`` (the model's query prompt where it has one)."""
        if not isinstance(text, str):
            raise ConfigError(f"embed_query takes one text, got {type(text).__name__}")
        matrix = checked_matrix(embed_queries(self.embedder, [text]), 1, self._dim, self.spec)
        row: list[float] = matrix[0].tolist()
        return row

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        rows: list[list[float]] = await run_in_executor(None, self.embed_documents, texts)
        return rows

    async def aembed_query(self, text: str) -> list[float]:
        row: list[float] = await run_in_executor(None, self.embed_query, text)
        return row
