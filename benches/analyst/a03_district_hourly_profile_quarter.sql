-- need: analyst: the daily rhythm of each district's traffic over a quarter
-- shape: fact (speeds, one quarter) ⋈ dimension, grouped by a dimension attribute and the hour of day
SELECT r.district, extract(hour FROM v.observed_at) AS hour,
       round(avg(v.avg_speed_kmh), 3) AS avg_speed_kmh,
       sum(v.vehicle_count) AS vehicles
FROM traffic.segment_speed v JOIN traffic.road_segments r ON v.segment_id = r.segment_id
WHERE v.dt BETWEEN DATE '2025-04-01' AND DATE '2025-06-30'
GROUP BY r.district, extract(hour FROM v.observed_at)
ORDER BY r.district, hour;
