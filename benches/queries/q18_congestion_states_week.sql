-- need: traffic bureau: distribution of congestion states (GB/T 33171 bands) by road class over a week
-- shape: scan + join + functions
SELECT r.road_class, segment_state(v.avg_speed_kmh, r.free_flow_speed_kmh, 'en') AS state, count(*) AS n
FROM traffic.segment_speed v JOIN traffic.road_segments r ON v.segment_id = r.segment_id
WHERE v.dt BETWEEN DATE '2025-09-01' AND DATE '2025-09-07'
GROUP BY 1, 2 ORDER BY 1, 2;
-- standard:
SELECT r.road_class,
       CASE WHEN v.avg_speed_kmh / r.free_flow_speed_kmh > 0.7 THEN 'a' WHEN v.avg_speed_kmh / r.free_flow_speed_kmh > 0.5 THEN 'b'
            WHEN v.avg_speed_kmh / r.free_flow_speed_kmh > 0.4 THEN 'c' WHEN v.avg_speed_kmh / r.free_flow_speed_kmh > 0.3 THEN 'd'
            ELSE 'e' END AS state, count(*) AS n
FROM traffic.segment_speed v JOIN traffic.road_segments r ON v.segment_id = r.segment_id
WHERE v.dt BETWEEN DATE '2025-09-01' AND DATE '2025-09-07'
GROUP BY 1, 2 ORDER BY 1, 2;
