-- Console schema (PostgreSQL). Timestamps are Unix seconds; the Kubernetes Assistant stays the
-- source of truth for the instance, so no spec field is stored here.
CREATE TABLE admins (
    id BIGSERIAL PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    admin_id BIGINT NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id BIGSERIAL PRIMARY KEY,
    admin_id BIGINT NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);

CREATE TABLE clients (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    plan TEXT NOT NULL,
    billing_status TEXT NOT NULL,
    notes TEXT NOT NULL DEFAULT '',
    namespace TEXT NOT NULL,
    assistant_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE UNIQUE INDEX clients_assistant ON clients (namespace, assistant_name) WHERE deleted_at IS NULL;
CREATE INDEX clients_name ON clients (name);

CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    client_id BIGINT,
    target TEXT NOT NULL,
    before_json TEXT,
    after_json TEXT
);
CREATE INDEX audit_client ON audit_events (client_id, id);

-- One row per client and month; last_minute makes a sample idempotent so two console
-- replicas (or a restart) never count the same minute twice.
CREATE TABLE usage_samples (
    client_id BIGINT NOT NULL,
    month TEXT NOT NULL,
    running_minutes BIGINT NOT NULL,
    last_minute BIGINT NOT NULL,
    PRIMARY KEY (client_id, month)
);
