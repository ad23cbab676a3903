-- need: analyst: volume and travel time by road design (lanes, speed limit) over a month
-- shape: fact (speeds, one month) ⋈ dimension, grouped by two dimension attributes
SELECT r.lanes, r.speed_limit_kmh, count(*) AS observations,
       sum(v.vehicle_count) AS vehicles,
       round(avg(v.travel_time_s / r.length_m * 1000), 3) AS seconds_per_km
FROM traffic.segment_speed v JOIN traffic.road_segments r ON v.segment_id = r.segment_id
WHERE v.dt BETWEEN DATE '2025-07-01' AND DATE '2025-07-31'
GROUP BY r.lanes, r.speed_limit_kmh
ORDER BY r.lanes, r.speed_limit_kmh;
