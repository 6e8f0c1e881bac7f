"""A counter per knowledge base that moves whenever what keyword search reads of it changes.

``knowledge/keyword_index.py`` keeps each base's BM25 postings in the retrieval worker's memory,
keyed by this counter: a search reads the counter in its own snapshot and uses the postings only
when they were loaded at the same value. Triggers keep it, so that no writer (the services, a
bulk COPY, a manual UPDATE) can forget to: any statement that inserts, changes or deletes a
searchable chunk, any change of the base's term statistics, and a TRUNCATE of the chunks move it.
Inserting and embedding chunks of a generation that is not searchable yet does not.
"""

from django.db import migrations

CREATE = """
-- No foreign key: a statement on the chunks of a base being deleted must never fail on it; the
-- row of a deleted base stays behind, a few bytes, and base ids are never reused.
CREATE TABLE knowledge_keyword_generation (
    knowledge_base_id bigint PRIMARY KEY,
    generation bigint NOT NULL
);

-- Sorted, so that two statements never lock the same counters in opposite orders.
CREATE FUNCTION knowledge_keyword_bump(bases bigint[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO knowledge_keyword_generation AS g (knowledge_base_id, generation)
    SELECT DISTINCT b, 1 FROM unnest(bases) AS b WHERE b IS NOT NULL ORDER BY 1
    ON CONFLICT (knowledge_base_id) DO UPDATE SET generation = g.generation + 1
$$;

CREATE FUNCTION knowledge_chunk_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM knowledge_keyword_bump(ARRAY(
        SELECT DISTINCT knowledge_base_id FROM new_rows WHERE searchable));
    RETURN NULL;
END $$;

CREATE FUNCTION knowledge_chunk_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM knowledge_keyword_bump(ARRAY(
        SELECT knowledge_base_id FROM old_rows WHERE searchable
        UNION SELECT knowledge_base_id FROM new_rows WHERE searchable));
    RETURN NULL;
END $$;

CREATE FUNCTION knowledge_chunk_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM knowledge_keyword_bump(ARRAY(
        SELECT DISTINCT knowledge_base_id FROM old_rows WHERE searchable));
    RETURN NULL;
END $$;

-- Every base, also one that has no counter yet (it counted as 0).
CREATE FUNCTION knowledge_chunk_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM knowledge_keyword_bump(ARRAY(SELECT id FROM knowledge_knowledgebase));
    RETURN NULL;
END $$;

CREATE FUNCTION knowledge_term_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM knowledge_keyword_bump(ARRAY(SELECT DISTINCT knowledge_base_id FROM old_rows));
    ELSE
        PERFORM knowledge_keyword_bump(ARRAY(SELECT DISTINCT knowledge_base_id FROM new_rows));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER chunk_keyword_insert AFTER INSERT ON knowledge_chunk
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION knowledge_chunk_inserted();
CREATE TRIGGER chunk_keyword_update AFTER UPDATE ON knowledge_chunk
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION knowledge_chunk_updated();
CREATE TRIGGER chunk_keyword_delete AFTER DELETE ON knowledge_chunk
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION knowledge_chunk_deleted();
CREATE TRIGGER chunk_keyword_truncate AFTER TRUNCATE ON knowledge_chunk
    FOR EACH STATEMENT EXECUTE FUNCTION knowledge_chunk_truncated();
CREATE TRIGGER term_keyword_insert AFTER INSERT ON knowledge_term
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION knowledge_term_changed();
CREATE TRIGGER term_keyword_update AFTER UPDATE ON knowledge_term
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION knowledge_term_changed();
CREATE TRIGGER term_keyword_delete AFTER DELETE ON knowledge_term
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION knowledge_term_changed();
"""

DROP = """
DROP TRIGGER chunk_keyword_insert ON knowledge_chunk;
DROP TRIGGER chunk_keyword_update ON knowledge_chunk;
DROP TRIGGER chunk_keyword_delete ON knowledge_chunk;
DROP TRIGGER chunk_keyword_truncate ON knowledge_chunk;
DROP TRIGGER term_keyword_insert ON knowledge_term;
DROP TRIGGER term_keyword_update ON knowledge_term;
DROP TRIGGER term_keyword_delete ON knowledge_term;
DROP FUNCTION knowledge_chunk_inserted(), knowledge_chunk_updated(), knowledge_chunk_deleted(),
    knowledge_chunk_truncated(), knowledge_term_changed(), knowledge_keyword_bump(bigint[]);
DROP TABLE knowledge_keyword_generation;
"""


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0002_workspaces_app")]

    operations = [migrations.RunSQL(CREATE, DROP)]
