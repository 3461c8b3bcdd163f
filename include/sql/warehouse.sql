-- Applying the numbered migrations (wecom.warehouse.apply_migrations).

-- name: migrations_lock
SELECT pg_advisory_lock(hashtextextended('wecom.migrations', 0));

-- name: migrations_unlock
SELECT pg_advisory_unlock(hashtextextended('wecom.migrations', 0));

-- name: applied
SELECT version, checksum FROM wecom.schema_migrations;

-- name: record
INSERT INTO wecom.schema_migrations (version, name, checksum) VALUES (%s, %s, %s);
