-- Several engines: each job records the engine it runs on (its configured
-- name, as `SHIPSHAPE_DOCKER_HOSTS` or the one-engine default `local` calls
-- it), so that recovery after a crash goes back to that engine. Rows from
-- before have NULL: unfinished ones are given the first configured engine's
-- name at the next start (they ran on the one engine there was); finished
-- ones stay NULL, and their history entries name no engine.
ALTER TABLE jobs ADD COLUMN host TEXT CHECK (host IS NULL OR length(host) BETWEEN 1 AND 64);

-- Two engines may each run a container of the same name: one unfinished job
-- per name on each engine (still never two on one container).
DROP INDEX jobs_unfinished;
CREATE UNIQUE INDEX jobs_unfinished ON jobs (ifnull(host, ''), container_name) WHERE finished_at IS NULL;
