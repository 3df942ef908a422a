-- The jobs table churns (every job is inserted, updated two or three times, then deleted). Vacuum and analyze
-- it far more eagerly than the defaults (20% / 10% of the table) so dead index entries do not pile up in
-- front of the fetch index and the planner's statistics follow bursts such as a bulk import fan-out.
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01,
    autovacuum_analyze_threshold = 1000
);
