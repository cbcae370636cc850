-- Per-key request rate (requests per second; NULL: the server's default), and the key a rotation
-- replaced, so listings can show what superseded what.
ALTER TABLE api_keys ADD COLUMN rate_limit_per_s INTEGER;
ALTER TABLE api_keys ADD COLUMN rotated_from INTEGER;
