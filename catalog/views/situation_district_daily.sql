-- City situation index: one score per district and day, 0–100, higher is better.
--
-- Three indicators, each worse when larger:
--   aqi    the district's daily AQI (HJ 633-2026): the mean of its stations' daily AQI
--   tpi    the district's traffic performance index: network_tpi over its segments'
--          5-minute observations, weighted by vehicle-kilometres
--   cases  12345 hotline cases received per 10,000 residents
-- Per day, each indicator is min–max normalised across the districts ('negative':
-- the best district scores 1), the entropy weight method gives each indicator's weight
-- w_j = d_j / Σ d (DOMAIN.md §3), and the index is 100 × Σ w_j x'_j.
-- A day on which every indicator is constant across districts has no weights: NULL.
WITH station_day AS (
  SELECT station_id, CAST(observed_at AS DATE) AS day,
         aqi_cn_daily(avg(pm25), avg(pm10), avg(so2), avg(no2), avg(co), max(o3_8h)) AS aqi
  FROM environment.air_quality_hourly
  GROUP BY 1, 2
),
air AS (
  SELECT s.district, d.day, avg(d.aqi) AS aqi
  FROM station_day d JOIN environment.air_stations s USING (station_id)
  GROUP BY 1, 2
),
traffic AS (
  SELECT g.district, v.dt AS day,
         network_tpi(v.travel_time_s, g.length_m / (g.free_flow_speed_kmh / 3.6),
                     g.length_m * v.vehicle_count / 1000.0) AS tpi
  FROM traffic.segment_speed v JOIN traffic.road_segments g USING (segment_id)
  GROUP BY 1, 2
),
hotline AS (
  SELECT district, CAST(received_at AS DATE) AS day, count(*) AS cases
  FROM hotline.cases
  GROUP BY 1, 2
),
indicators AS (
  SELECT a.district, a.day, a.aqi, t.tpi,
         coalesce(h.cases, 0) * 10000.0 / p.population AS cases_per_10k
  FROM air a
  JOIN traffic t ON t.district = a.district AND t.day = a.day
  JOIN common.districts p ON p.district = a.district
  LEFT JOIN hotline h ON h.district = a.district AND h.day = a.day
),
normalised AS (
  SELECT *,
         minmax_norm(aqi, 'negative') OVER (PARTITION BY day) AS x_aqi,
         minmax_norm(tpi, 'negative') OVER (PARTITION BY day) AS x_tpi,
         minmax_norm(cases_per_10k, 'negative') OVER (PARTITION BY day) AS x_cases
  FROM indicators
),
divergence AS (
  SELECT day, entropy_weight(x_aqi) AS d_aqi, entropy_weight(x_tpi) AS d_tpi,
         entropy_weight(x_cases) AS d_cases
  FROM normalised
  GROUP BY day
),
weights AS (
  SELECT day,
         d_aqi / NULLIF(d_aqi + d_tpi + d_cases, 0) AS w_aqi,
         d_tpi / NULLIF(d_aqi + d_tpi + d_cases, 0) AS w_tpi,
         d_cases / NULLIF(d_aqi + d_tpi + d_cases, 0) AS w_cases
  FROM divergence
)
SELECT n.district, n.day, n.aqi, n.tpi, n.cases_per_10k, w.w_aqi, w.w_tpi, w.w_cases,
       100 * (w.w_aqi * n.x_aqi + w.w_tpi * n.x_tpi + w.w_cases * n.x_cases) AS situation_index
FROM normalised n JOIN weights w USING (day)
