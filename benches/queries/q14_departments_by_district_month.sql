-- need: analyst: one row per district and month across departments — hotline cases, emergency incidents, mean PM2.5
-- shape: three aggregations joined across departments
WITH cases AS (SELECT district, month, count(*) AS cases FROM hotline.cases GROUP BY 1, 2),
incidents AS (SELECT district, month, count(*) AS incidents FROM emergency.incidents GROUP BY 1, 2),
air AS (SELECT s.district, a.month, round(avg(a.pm25), 3) AS pm25
        FROM environment.air_quality_hourly a JOIN environment.air_stations s ON a.station_id = s.station_id
        GROUP BY 1, 2)
SELECT c.district, c.month, c.cases, coalesce(i.incidents, 0) AS incidents, a.pm25
FROM cases c
LEFT JOIN incidents i ON c.district = i.district AND c.month = i.month
LEFT JOIN air a ON c.district = a.district AND c.month = a.month
ORDER BY c.district, c.month;
