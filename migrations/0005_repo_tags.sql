-- The tag listing of each repository, as last fetched: the registry is asked
-- again only once SHIPSHAPE_TAGS_INTERVAL has passed, also across restarts.
-- `data` is the registry layer's own JSON (tags, digests learnt, last error);
-- the store does not look inside.
CREATE TABLE repo_tags (
    repository TEXT PRIMARY KEY NOT NULL,
    data TEXT NOT NULL,
    saved_at INTEGER NOT NULL
);
