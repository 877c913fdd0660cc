-- Whether the user signed in on the login page for a pending authorization request (what
-- prompt=login and max_age=0 ask for): a column of its own, set by one UPDATE, where it was a
-- field of the request's JSON payload that a sign-in read, changed and wrote back.
ALTER TABLE authorization_requests ADD COLUMN login_done BIGINT NOT NULL DEFAULT 0;
