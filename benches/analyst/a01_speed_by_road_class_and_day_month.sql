-- need: analyst: how each road class moved, day by day, over a month
-- shape: fact (speeds, one month) ⋈ dimension (segments), grouped by a dimension attribute and the day
SELECT r.road_class, v.dt AS day, count(*) AS observations,
       round(avg(v.avg_speed_kmh), 3) AS avg_speed_kmh,
       sum(v.vehicle_count) AS vehicles
FROM traffic.segment_speed v JOIN traffic.road_segments r ON v.segment_id = r.segment_id
WHERE v.dt BETWEEN DATE '2025-03-01' AND DATE '2025-03-31'
GROUP BY r.road_class, v.dt
ORDER BY r.road_class, day;
