"""Knowledge bases, their documents, and the chunks retrieval searches.

All chunks of all knowledge bases live in one table, ``Chunk``: a ``vector`` column for dense
search (HNSW, cosine distance; one partial index per embedding dimension) and BM25 term weights as
a ``sparsevec`` with the chunk's term ids in an ``integer[]`` (GIN) for keyword search. Every query
filters by knowledge base, so the workspace boundary is a knowledge base's.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from pgvector.django import SparseVectorField, VectorField

from workspaces.models import WorkspaceOwned, grant_models


class Splitter(models.TextChoices):
    SENTENCE = "sentence", "Sentences"
    MARKDOWN = "markdown", "Markdown-aware"
    TOKENS = "tokens", "Fixed tokens"


class SearchMode(models.TextChoices):
    HYBRID = "hybrid", "Hybrid (dense + keyword)"
    DENSE = "dense", "Dense (embeddings)"
    KEYWORD = "keyword", "Keyword (BM25)"


class KnowledgeBase(WorkspaceOwned):
    slug = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # The catalog model that embeds chunks and queries. It can change only while the knowledge
    # base holds no documents: vectors of two models are not comparable.
    embedding_model = models.ForeignKey(
        "catalog.Model", on_delete=models.PROTECT, related_name="knowledge_bases"
    )
    # Of the embedding model; known once the first chunk is embedded.
    dimensions = models.PositiveIntegerField(null=True, blank=True)
    # Chunking (``knowledge.chunking.ChunkSettings``): applies to documents ingested from now on.
    splitter = models.CharField(max_length=16, choices=Splitter.choices, default=Splitter.SENTENCE)
    chunk_size = models.PositiveIntegerField(default=200)
    chunk_overlap = models.PositiveIntegerField(default=20)
    # Retrieval defaults; a flow node may override them.
    search_mode = models.CharField(
        max_length=16, choices=SearchMode.choices, default=SearchMode.HYBRID
    )
    top_k = models.PositiveIntegerField(default=5)
    score_threshold = models.FloatField(default=0.0)
    rerank = models.BooleanField(default=False)
    reranker = models.ForeignKey(
        "catalog.Model",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reranked_knowledge_bases",
    )
    # BM25 corpus statistics over the searchable chunks, kept by ``knowledge.services``.
    chunk_total = models.PositiveBigIntegerField(default=0)
    length_total = models.PositiveBigIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "slug"], name="knowledge_base_slug")
        ]
        permissions = [
            ("use_knowledgebase", "Can retrieve from the knowledge base in flows and agents"),
            ("share_knowledgebase", "Can manage who can access the knowledge base"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def average_length(self) -> float:
        return self.length_total / self.chunk_total if self.chunk_total else 0.0


KnowledgeBaseUserObjectPermission, KnowledgeBaseGroupObjectPermission = grant_models(KnowledgeBase)


class DocumentStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PARSING = "parsing", "Parsing"
    EMBEDDING = "embedding", "Embedding"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class DocumentSource(models.TextChoices):
    FILE = "file", "File"
    TEXT = "text", "Pasted text"
    URL = "url", "URL"


IN_PROGRESS = (DocumentStatus.QUEUED, DocumentStatus.PARSING, DocumentStatus.EMBEDDING)


class Document(models.Model):
    """A file, a pasted text or a web page, and where its ingestion stands.

    Each ingestion is a ``generation``: its chunks are written unsearchable and become searchable
    all at once, replacing the previous generation's, when the last one is embedded. A document is
    therefore searchable in full or not at all (``searchable``), whatever its status says.
    """

    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="documents"
    )
    name = models.CharField(max_length=300)
    source = models.CharField(max_length=8, choices=DocumentSource.choices)
    url = models.URLField(max_length=2000, blank=True)
    # The original bytes (uploads, pasted text, the fetched page), in the default storage.
    file = models.FileField(upload_to="knowledge/%Y/%m/", max_length=500, blank=True)
    content_type = models.CharField(max_length=200, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    content_hash = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=DocumentStatus.choices, default=DocumentStatus.QUEUED
    )
    error = models.TextField(blank=True)
    generation = models.PositiveIntegerField(default=0)
    searchable = models.BooleanField(default=False)
    chunk_count = models.PositiveIntegerField(default=0)
    # Progress of the running generation: chunks embedded so far, and how many of those reused
    # an embedding of unchanged text.
    embedded_count = models.PositiveIntegerField(default=0)
    reused_count = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ingested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["knowledge_base", "name"], name="document_name")
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="document_status")]

    def __str__(self) -> str:
        return self.name

    @property
    def in_progress(self) -> bool:
        return self.status in IN_PROGRESS


class Chunk(models.Model):
    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="chunks", db_index=False
    )
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    generation = models.PositiveIntegerField()
    position = models.PositiveIntegerField()
    text = models.TextField()
    content_hash = models.CharField(max_length=64)
    page = models.PositiveIntegerField(null=True, blank=True)
    section = models.CharField(max_length=500, blank=True)
    # The document's metadata, copied so that filters stay in one SQL query.
    metadata = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    searchable = models.BooleanField(default=False)
    edited = models.BooleanField(default=False)
    dimensions = models.PositiveIntegerField(null=True, blank=True)
    embedding = VectorField(null=True, blank=True)
    # Keyword search: the chunk's distinct term ids, and per term the BM25 weight with the
    # document-side saturation applied (idf is applied by the query).
    terms = ArrayField(models.IntegerField(), default=list, blank=True)
    bm25 = SparseVectorField(null=True, blank=True)
    length = models.PositiveIntegerField(default=0)  # keyword tokens

    class Meta:
        ordering = ["document_id", "position"]
        indexes = [
            models.Index(
                fields=["knowledge_base", "document", "generation"], name="chunk_kb_document"
            ),
            GinIndex(fields=["terms"], name="chunk_terms"),
            GinIndex(fields=["metadata"], opclasses=["jsonb_path_ops"], name="chunk_metadata"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.position}"


class Term(models.Model):
    """How many searchable chunks of a knowledge base hold a term (BM25's document frequency)."""

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, db_index=False)
    term = models.IntegerField()
    df = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["knowledge_base", "term"], name="term_per_base")
        ]

    def __str__(self) -> str:
        return f"{self.term}: {self.df}"


class EmbeddingCache(models.Model):
    """Embeddings by content hash, per workspace and embedding model: unchanged text is never
    embedded twice (re-uploads, re-indexing, copies of a document)."""

    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, db_index=False)
    model_key = models.CharField(max_length=64)
    content_hash = models.CharField(max_length=64)
    embedding = VectorField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "model_key", "content_hash"], name="embedding_cache_key"
            )
        ]

    def __str__(self) -> str:
        return self.content_hash
