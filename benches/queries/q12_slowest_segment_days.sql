-- need: analyst: the slowest segment-days of the year (one group per segment and day)
-- shape: full scan + high-cardinality group-by + top-k
SELECT segment_id, dt, round(avg(avg_speed_kmh), 4) AS speed, count(*) AS n
FROM traffic.segment_speed GROUP BY segment_id, dt ORDER BY speed, segment_id, dt LIMIT 20;
