"""Reciprocal rank fusion in Python gives the fused ranking that PostgreSQL's numerics gave when
hybrid search fused in SQL: the same sums, so the same order and the same ties."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from django.db import connection

from knowledge.fusion import RRF_K, fuse, reciprocal_rank
from tests.knowledge.helpers import fused_in_sql


def _in_python(nearest, found, limit: int) -> list[tuple]:
    return [
        (f.chunk_id, f.score, f.dense_rank, f.dense_score, f.keyword_rank, f.keyword_score)
        for f in fuse(nearest, found, limit)
    ]


@pytest.mark.django_db
def test_each_reciprocal_rank_is_the_numeric_postgresql_divides():
    # Ranks past 9,940 divide by five-digit numbers: numeric keeps four more decimals.
    ranks = [*range(1, 1001), *range(9_930, 9_960), 99_999_000]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1.0 / (%s + r) FROM unnest(%s::bigint[]) AS r ORDER BY r", [RRF_K, ranks]
        )
        expected = [row[0] for row in cursor.fetchall()]
    assert [reciprocal_rank(r) for r in ranks] == expected
    assert [str(reciprocal_rank(r)) for r in ranks] == [str(value) for value in expected]


@pytest.mark.django_db
def test_sums_that_floats_call_equal_keep_postgresql_order():
    # Dense rank 1 alone, ranks 62 in both, keyword rank 1 alone: one float, two numerics
    # (1/122 + 1/122 rounds up where 1/61 rounds down), so the pair in both comes first although
    # its chunk id is the highest.
    nearest = [(1, 0.1), *((100 + r, 0.2 + r / 1000) for r in range(2, 62)), (999, 0.5)]
    found = [(2, 9.0), *((200 + r, 8.0 - r / 100) for r in range(2, 62)), (999, 1.0)]
    assert 1 / (RRF_K + 1) == 2 * (1 / (RRF_K + 62))
    fused = _in_python(nearest, found, 3)
    assert [row[0] for row in fused] == [999, 1, 2]
    assert fused[0][1] > fused[1][1] == fused[2][1]
    assert fused == fused_in_sql(nearest, found, 3)


@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(8))
def test_fused_rankings_equal_the_sql_ones(seed):
    rng = random.Random(seed)
    for _ in range(25):
        ids = rng.sample(range(1, 400), 300)
        nearest = [(i, rng.random()) for i in ids[: rng.randint(0, 150)]]
        nearest.sort(key=lambda row: row[1])
        overlap = rng.randint(0, len(nearest))
        found_ids = [i for i, _ in nearest[:overlap]] + ids[150 : 150 + rng.randint(0, 150)]
        rng.shuffle(found_ids)
        found = sorted(((i, rng.random() * 30) for i in found_ids), key=lambda row: -row[1])
        limit = rng.choice([1, 5, 10, 100, 400])
        expected = fused_in_sql(nearest, found, limit)
        assert _in_python(nearest, found, limit) == expected
        assert all(isinstance(row[1], Decimal) for row in expected)
