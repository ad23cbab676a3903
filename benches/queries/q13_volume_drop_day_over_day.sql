-- need: analyst: the largest day-over-day drops of a segment's traffic volume (incidents, closures)
-- shape: high-cardinality group-by + window (LAG) + top-k
WITH daily AS (
  SELECT segment_id, dt, sum(vehicle_count) AS vehicles FROM traffic.segment_speed GROUP BY 1, 2),
change AS (
  SELECT segment_id, dt, vehicles,
         vehicles - lag(vehicles) OVER (PARTITION BY segment_id ORDER BY dt) AS delta
  FROM daily)
SELECT segment_id, dt, vehicles, delta FROM change WHERE delta IS NOT NULL
ORDER BY delta, segment_id, dt LIMIT 20;
