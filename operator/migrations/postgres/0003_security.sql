-- Issue 13 security: disabled admins, last sign-in, scoped and expiring API tokens.
-- Existing tokens keep full power and no expiry (what they had), so nothing breaks on upgrade.
ALTER TABLE admins ADD COLUMN disabled_at BIGINT;
ALTER TABLE admins ADD COLUMN last_sign_in_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT 'full';
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
