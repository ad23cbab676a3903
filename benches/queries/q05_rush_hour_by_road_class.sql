-- need: analyst: working-day rush-hour congestion by road class over a month
-- shape: large scan + join + functions
SELECT r.road_class, count(*) AS n,
       round(avg(travel_time_index(v.travel_time_s, r.length_m / (r.free_flow_speed_kmh / 3.6))), 4) AS tti,
       sum(CASE WHEN segment_state(v.avg_speed_kmh, r.free_flow_speed_kmh, 'en') IN ('congested', 'severely congested') THEN 1 ELSE 0 END) AS congested
FROM traffic.segment_speed v JOIN traffic.road_segments r ON v.segment_id = r.segment_id
WHERE v.dt BETWEEN DATE '2025-03-01' AND DATE '2025-03-31'
  AND extract(hour FROM v.observed_at) IN (7, 8, 17, 18) AND extract(dow FROM v.observed_at) BETWEEN 1 AND 5
GROUP BY r.road_class ORDER BY r.road_class;
-- standard:
SELECT r.road_class, count(*) AS n,
       round(avg(greatest(v.travel_time_s / (r.length_m / (r.free_flow_speed_kmh / 3.6)), 1)), 4) AS tti,
       sum(CASE WHEN v.avg_speed_kmh / r.free_flow_speed_kmh < 0.5 THEN 1 ELSE 0 END) AS congested
FROM traffic.segment_speed v JOIN traffic.road_segments r ON v.segment_id = r.segment_id
WHERE v.dt BETWEEN DATE '2025-03-01' AND DATE '2025-03-31'
  AND extract(hour FROM v.observed_at) IN (7, 8, 17, 18) AND extract(dow FROM v.observed_at) BETWEEN 1 AND 5
GROUP BY r.road_class ORDER BY r.road_class;
