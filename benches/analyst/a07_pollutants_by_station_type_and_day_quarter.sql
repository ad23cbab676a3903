-- need: analyst: pollutants by kind of station, day by day, over a quarter
-- shape: fact (hourly air quality, one quarter) ⋈ dimension, grouped by dimension attribute and day
SELECT s.station_type, date_trunc('day', q.observed_at) AS day,
       round(avg(q.no2), 3) AS no2, round(avg(q.o3), 3) AS o3, round(avg(q.co), 4) AS co
FROM environment.air_quality_hourly q JOIN environment.air_stations s ON q.station_id = s.station_id
WHERE q.observed_at >= TIMESTAMP '2025-10-01 00:00:00' AND q.observed_at < TIMESTAMP '2026-01-01 00:00:00'
GROUP BY s.station_type, date_trunc('day', q.observed_at)
ORDER BY s.station_type, day;
