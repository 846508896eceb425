
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY NOT NULL,
    alg         TEXT NOT NULL,
    private_der BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);
