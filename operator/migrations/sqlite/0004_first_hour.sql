-- A person's first hour: accent-insensitive search and the first-run setup link.

-- Name, e-mail and Assistant name folded in Rust (lower case, no diacritics) so `Élodie`,
-- `elodie` and `ÉLODIE` find the same client on SQLite, whose LOWER folds ASCII only.
-- Empty until the console fills it (at start and before a search).
ALTER TABLE clients ADD COLUMN search_key TEXT NOT NULL DEFAULT '';
CREATE INDEX clients_search_key_pending ON clients (id) WHERE search_key = '';

-- One-time setup links printed in the log while no administrator exists; only the hash
-- of the token is stored.
CREATE TABLE setup_tokens (
    token_hash TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
