-- What a history entry is about: a container recreated by a job, or a Swarm
-- service rolled out by Swarm (its `container_id` is then the service id and
-- `container_name` the service name).
ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'container';
