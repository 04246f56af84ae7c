"""The ledger's tables: created on first use, in one transaction, under an advisory lock.

``CREATE ... IF NOT EXISTS`` keeps it idempotent; the advisory lock keeps two workers that start
at once from racing on the catalogue. The audit table refuses UPDATE and DELETE: it is append-only.
"""

from __future__ import annotations

#: Any constant: the key of the advisory lock taken while the schema is created.
SCHEMA_LOCK_KEY = 7_202_611_301

VERDICTS = ("pending", "passed", "failed", "rolled_back")

DDL = f"""
CREATE TABLE IF NOT EXISTS environment_lock (
    environment  text PRIMARY KEY,
    dag_id       text NOT NULL,
    run_id       text NOT NULL,
    operation    text NOT NULL,
    acquired_at  timestamptz NOT NULL DEFAULT now()
);
-- When the holder means to let go (a maintenance window's end); NULL: when it is done.
ALTER TABLE environment_lock ADD COLUMN IF NOT EXISTS until timestamptz;

CREATE TABLE IF NOT EXISTS revision (
    environment  text NOT NULL,
    service      text NOT NULL,
    version      text NOT NULL,
    name         text NOT NULL,
    url          text NOT NULL DEFAULT '',
    image        text NOT NULL DEFAULT '',
    verdict      text NOT NULL CHECK (verdict IN ({", ".join(f"'{v}'" for v in VERDICTS)})),
    reason       text NOT NULL DEFAULT '',
    run_id       text NOT NULL,
    deployed_at  timestamptz NOT NULL DEFAULT now(),
    served_at    timestamptz,
    judged_at    timestamptz,
    PRIMARY KEY (environment, service, version)
);

-- What the registry resolved the image to (Cloud Run's image digest); '' where nobody can tell.
ALTER TABLE revision ADD COLUMN IF NOT EXISTS digest text NOT NULL DEFAULT '';

CREATE TABLE IF NOT EXISTS service_state (
    environment       text NOT NULL,
    service           text NOT NULL,
    live_version      text,
    previous_version  text,
    last_good_version text,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment, service)
);

CREATE TABLE IF NOT EXISTS audit (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    environment  text NOT NULL,
    dag_id       text NOT NULL DEFAULT '',
    run_id       text NOT NULL DEFAULT '',
    actor        text NOT NULL DEFAULT '',
    action       text NOT NULL,
    service      text,
    version      text,
    detail       jsonb NOT NULL DEFAULT '{{}}'::jsonb
);
CREATE INDEX IF NOT EXISTS audit_by_environment ON audit (environment, id);
CREATE INDEX IF NOT EXISTS audit_by_run ON audit (environment, run_id, id);

CREATE OR REPLACE FUNCTION audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END $$;
DROP TRIGGER IF EXISTS audit_append_only ON audit;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_is_append_only();
"""
