-- need: analyst: fine particles per district and month over the year
-- shape: fact (hourly air quality, the year) ⋈ dimension (stations), grouped by dimension attribute and month
SELECT s.district, date_trunc('month', q.observed_at) AS month,
       round(avg(q.pm25), 3) AS pm25, round(max(q.pm10), 3) AS pm10_max, count(*) AS hours
FROM environment.air_quality_hourly q JOIN environment.air_stations s ON q.station_id = s.station_id
GROUP BY s.district, date_trunc('month', q.observed_at)
ORDER BY s.district, month;
