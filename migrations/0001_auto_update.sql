-- Per-container auto-update flag. Keyed by container name, not id, because a
-- recreate (ours or docker compose's) gives the container a new id but keeps its name.
CREATE TABLE auto_update (
    container_name TEXT PRIMARY KEY NOT NULL,
    enabled        INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    updated_at     INTEGER NOT NULL
) STRICT;
