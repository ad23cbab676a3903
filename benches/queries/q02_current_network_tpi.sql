-- need: cockpit: the current traffic performance index of each district's road network (latest 5-minute interval)
-- shape: selective filter + join + aggregate function
SELECT r.district,
       round(network_tpi(v.travel_time_s, r.length_m / (r.free_flow_speed_kmh / 3.6), r.length_m * r.lanes), 3) AS tpi,
       count(*) AS segments
FROM traffic.segment_speed v JOIN traffic.road_segments r ON v.segment_id = r.segment_id
WHERE v.dt = DATE '2025-12-31' AND v.observed_at = TIMESTAMP '2025-12-31 17:55:00'
GROUP BY r.district ORDER BY r.district;
-- standard:
SELECT r.district,
       round(sum(r.length_m * r.lanes * greatest(v.travel_time_s - r.length_m / (r.free_flow_speed_kmh / 3.6), 0)
                 / v.travel_time_s) / sum(r.length_m * r.lanes), 3) AS delay_time_proportion,
       count(*) AS segments
FROM traffic.segment_speed v JOIN traffic.road_segments r ON v.segment_id = r.segment_id
WHERE v.dt = DATE '2025-12-31' AND v.observed_at = TIMESTAMP '2025-12-31 17:55:00'
GROUP BY r.district ORDER BY r.district;
