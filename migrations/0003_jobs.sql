-- Update jobs: while a job runs, its row is the journal that lets a restart
-- after a crash (kill -9 at any step) put the container back in order; once
-- finished, the same row is the update history the API and the UI show.
CREATE TABLE jobs (
    -- The op id, chosen by the caller. It also goes into container names
    -- (`<name>__upd_<op>`) and labels, so it is plain alphanumeric.
    id               TEXT PRIMARY KEY NOT NULL
                     CHECK (length(id) BETWEEN 8 AND 64 AND id NOT GLOB '*[^0-9A-Za-z]*'),
    -- The old container's full id: recovery looks it up in the engine.
    container_id     TEXT NOT NULL,
    -- The name the container must have again when the job ends, whatever happens.
    container_name   TEXT NOT NULL,
    -- The image reference as the container names it (the group key in the UI).
    image            TEXT NOT NULL,
    from_image_id    TEXT NOT NULL,
    -- NULL when the job ended before the new image was known (a failed pull).
    to_image_id      TEXT,
    -- Shortened digests for the history, as the caller gives them; NULL when unknown.
    from_digest      TEXT,
    to_digest        TEXT,
    -- Set once the new container exists, so recovery can find and remove it.
    new_container_id TEXT,
    -- The last step written *before* it was carried out: after a crash it may
    -- or may not have happened, and recovery checks the engine for it. Free
    -- TEXT, validated by `JobStep` in Rust, so a new step needs no migration.
    step             TEXT NOT NULL,
    -- Whatever recovery needs (create body, old restart policy, whether it was
    -- running, names, dependents), as JSON the job serialises. Checked here so
    -- a broken plan is refused before anything is touched, not found after a crash.
    plan             TEXT NOT NULL CHECK (json_valid(plan)),
    -- Unix seconds.
    started_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    result           TEXT CHECK (result IN ('updated', 'rolled_back', 'failed', 'unchanged')),
    error            TEXT,
    -- Recovery finds its work by `finished_at IS NULL` alone, and every
    -- history entry has an outcome: the two are set together.
    CHECK ((finished_at IS NULL) = (result IS NULL))
) STRICT;

-- History, newest first, and its pruning: read backwards, this index gives
-- `ORDER BY finished_at DESC, rowid DESC` (the rowid every index ends with
-- breaks ties in finish time) without a sort. A DESC column would not.
CREATE INDEX jobs_history ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- Unfinished jobs, read at start for recovery (a handful, sorted on the fly).
-- Unique by name: two jobs must never work on one container at once, and if
-- the runner's own guard ever failed, the second job is refused here, before
-- it touches anything.
CREATE UNIQUE INDEX jobs_unfinished ON jobs (container_name) WHERE finished_at IS NULL;
