-- Session ids are now stored as their SHA-256, so a read-only copy of the
-- database cannot be turned into a working cookie. Sessions stored under the
-- raw id cannot be converted (the cookie holds the id, not the hash): end them.
DELETE FROM sessions;
