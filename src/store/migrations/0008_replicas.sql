
-- At most one active signing key per purpose, enforced by the database: two replicas that
-- rotate at once cannot both win.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (purpose) WHERE retired_at IS NULL;
-- Replicas follow revocations made elsewhere by their time.
CREATE INDEX revoked_tokens_by_time ON revoked_tokens (revoked_at);
