-- Throttling of failed logins (services/throttle.ts): the store of rate-limiter-flexible's
-- RateLimiterPostgres, created here rather than by the library at run time so that the schema
-- comes from the migrations like every other table. The layout is the library's own
-- (key, points, expire in epoch milliseconds of the API's clock). Keys are
-- `login_<counter>_<account|address>:<sha-256>`: no e-mail or client address in clear.
-- Rows are disposable state, not records: the audit log keeps every failed login.
CREATE TABLE login_throttle (
  key    varchar(255) PRIMARY KEY,
  points integer NOT NULL DEFAULT 0,
  expire bigint
);
-- The library's periodic sweep deletes by expiry.
CREATE INDEX login_throttle_expire_idx ON login_throttle (expire);
