-- Values shipshape generates once and keeps: the password hash, the cookie key.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

-- Server-side login sessions (actix-session state as JSON); swept when expired.
CREATE TABLE sessions (
    key        TEXT PRIMARY KEY NOT NULL,
    state      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_expires_at ON sessions (expires_at);
