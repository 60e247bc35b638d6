-- The keys' time index (0009) served only retention, which deletes the keys
-- of measurements older than measurement_max_age once an hour, yet every
-- reported measurement paid for it: a second B-tree insert per key, about a
-- third of what recording a key costs (docs/benchmarks.md). Keys arrive
-- roughly in time order, so a BRIN index on time finds the expired ones
-- nearly as well (block ranges of old keys) for almost nothing per insert.
-- Retention filters the tenant on the rows the ranges yield.
DROP INDEX measurement_keys_time;
CREATE INDEX measurement_keys_time ON measurement_keys USING brin (time);
