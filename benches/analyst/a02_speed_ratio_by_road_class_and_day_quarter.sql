-- need: analyst: speed against free flow per road class and day over a quarter
-- shape: fact (speeds, one quarter) ⋈ dimension, an expression over both sides, grouped by dimension attribute and day
SELECT r.road_class, v.dt AS day,
       round(avg(v.avg_speed_kmh / r.free_flow_speed_kmh), 4) AS speed_ratio,
       round(sum(v.travel_time_s) / 3600.0, 2) AS travel_hours
FROM traffic.segment_speed v JOIN traffic.road_segments r ON v.segment_id = r.segment_id
WHERE v.dt BETWEEN DATE '2025-01-01' AND DATE '2025-03-31'
GROUP BY r.road_class, v.dt
ORDER BY r.road_class, day;
