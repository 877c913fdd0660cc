-- Whether the user signed in for a pending authorization request now lives in the browser
-- session, which that sign-in writes anyway: one statement fewer per sign-in. Never edit an
-- applied migration.
ALTER TABLE authorization_requests DROP COLUMN login_done;
