-- need: city brain: the composite situation index of every district for a month (entropy-weighted AQI, TPI and hotline load)
-- shape: view: three departments, windows, entropy weights
SELECT district, day, round(situation_index, 3) AS situation_index
FROM situation.district_daily WHERE day BETWEEN DATE '2025-04-01' AND DATE '2025-04-30'
ORDER BY day, district;
-- standard:
WITH cases AS (
  SELECT district, CAST(received_at AS DATE) AS day, count(*) AS cases
  FROM hotline.cases WHERE month = '2025-04' GROUP BY 1, 2),
speed AS (
  SELECT r.district, v.dt AS day, avg(v.avg_speed_kmh / r.free_flow_speed_kmh) AS rel_speed
  FROM traffic.segment_speed v JOIN traffic.road_segments r ON v.segment_id = r.segment_id
  WHERE v.dt BETWEEN DATE '2025-04-01' AND DATE '2025-04-30' GROUP BY 1, 2)
SELECT s.district, s.day, round(s.rel_speed, 4) AS rel_speed, coalesce(c.cases, 0) AS cases
FROM speed s LEFT JOIN cases c ON s.district = c.district AND s.day = c.day
ORDER BY s.day, s.district;
