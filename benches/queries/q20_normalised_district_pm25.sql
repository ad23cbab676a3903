-- need: analyst: each district's daily PM2.5 normalised to 0–1 among districts (input of a composite index)
-- shape: group-by + window normalisation + functions
WITH daily AS (
  SELECT s.district, CAST(a.observed_at AS DATE) AS day, avg(a.pm25) AS pm25
  FROM environment.air_quality_hourly a JOIN environment.air_stations s ON a.station_id = s.station_id
  WHERE a.month = '2025-01' GROUP BY 1, 2)
SELECT district, day, round(minmax_norm(pm25, 'negative') OVER (PARTITION BY day), 4) AS score
FROM daily ORDER BY day, district;
-- standard:
WITH daily AS (
  SELECT s.district, CAST(a.observed_at AS DATE) AS day, avg(a.pm25) AS pm25
  FROM environment.air_quality_hourly a JOIN environment.air_stations s ON a.station_id = s.station_id
  WHERE a.month = '2025-01' GROUP BY 1, 2)
SELECT district, day,
       round((max(pm25) OVER (PARTITION BY day) - pm25) / nullif(max(pm25) OVER (PARTITION BY day) - min(pm25) OVER (PARTITION BY day), 0), 4) AS score
FROM daily ORDER BY day, district;
