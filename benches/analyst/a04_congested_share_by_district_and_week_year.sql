-- need: analyst: the share of congested observations per district and week over the year
-- shape: fact (speeds, the year) ⋈ dimension, a conditional count, grouped by dimension attribute and week
SELECT r.district, date_trunc('week', v.observed_at) AS week,
       count(*) AS observations,
       sum(CASE WHEN v.avg_speed_kmh < 0.5 * r.free_flow_speed_kmh THEN 1 ELSE 0 END) AS congested
FROM traffic.segment_speed v JOIN traffic.road_segments r ON v.segment_id = r.segment_id
GROUP BY r.district, date_trunc('week', v.observed_at)
ORDER BY r.district, week;
