-- Which numbered migrations have been applied to this database.
CREATE SCHEMA IF NOT EXISTS wecom;
CREATE TABLE IF NOT EXISTS wecom.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE wecom.schema_migrations IS 'Applied migrations from include/sql/migrations, one row each.';
COMMENT ON COLUMN wecom.schema_migrations.version IS 'Migration number (the NNN of NNN_name.sql).';
COMMENT ON COLUMN wecom.schema_migrations.name IS 'Migration file name.';
COMMENT ON COLUMN wecom.schema_migrations.checksum IS 'SHA-256 of the file as applied.';
COMMENT ON COLUMN wecom.schema_migrations.applied_at IS 'When it was applied.';
