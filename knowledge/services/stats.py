"""BM25 corpus statistics of a knowledge base: chunk count, total length, and per-term document
frequency over its searchable chunks.

Callers hold the knowledge base's row lock (``select_for_update``) inside a transaction, so
concurrent ingestions of one base update its statistics one after the other.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import Greatest

from knowledge.models import Chunk, KnowledgeBase


def stats_add(knowledge_base: KnowledgeBase, chunks: QuerySet[Chunk], sign: int = 1) -> None:
    """Count ``chunks`` into (``sign`` 1) or out of (``sign`` −1) the base's statistics."""
    ids_sql, ids_params = chunks.values("id").query.sql_with_params()
    totals = chunks.aggregate(n=Count("id"), length=Sum("length"))
    count, length = totals["n"] or 0, totals["length"] or 0
    if not count:
        return
    with connection.cursor() as cursor:
        if sign > 0:
            # Sorted, so that two transactions never take the same term rows in opposite orders.
            cursor.execute(
                "INSERT INTO knowledge_term (knowledge_base_id, term, df) "
                "SELECT %s, t, count(*) FROM knowledge_chunk c, unnest(c.terms) AS t "
                f"WHERE c.id IN ({ids_sql}) GROUP BY t ORDER BY t "
                "ON CONFLICT (knowledge_base_id, term) "
                "DO UPDATE SET df = knowledge_term.df + EXCLUDED.df",
                [knowledge_base.id, *ids_params],
            )
        else:
            cursor.execute(
                "UPDATE knowledge_term k SET df = greatest(k.df - x.n, 0) FROM ("
                "  SELECT t, count(*) AS n FROM knowledge_chunk c, unnest(c.terms) AS t "
                f"  WHERE c.id IN ({ids_sql}) GROUP BY t ORDER BY t"
                ") x WHERE k.knowledge_base_id = %s AND k.term = x.t",
                [*ids_params, knowledge_base.id],
            )
    KnowledgeBase.objects.filter(id=knowledge_base.id).update(
        chunk_total=Greatest(F("chunk_total") + sign * count, 0),
        length_total=Greatest(F("length_total") + sign * length, 0),
    )
    knowledge_base.refresh_from_db(fields=["chunk_total", "length_total"])
