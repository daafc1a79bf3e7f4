-- Handoff links: the one-time page (/welcome/{token}) that gives a client their
-- assistant's address, the device invite and their gateway token. Only the SHA-256 of the
-- link token is stored; the gateway token is kept sealed with a key derived from the link
-- token (so the database alone never reveals it) and removed once the link is spent,
-- replaced or expired.
CREATE TABLE handoff_links (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id BIGINT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    sealed_gateway_token TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    spent_at BIGINT,
    replaced_at BIGINT
);
CREATE INDEX handoff_links_client ON handoff_links (client_id, id);
