-- need: cockpit: air quality of the latest hour in each district (the city-brain dashboard tile)
-- shape: selective filter + group-by + functions
WITH latest AS (SELECT max(observed_at) AS t FROM environment.air_quality_hourly)
SELECT s.district,
       round(avg(a.pm25), 3) AS pm25, round(avg(a.pm10), 3) AS pm10, round(avg(a.o3), 3) AS o3,
       max(aqi_cn_hourly(a.pm25, a.pm10, a.so2, a.no2, a.co, a.o3)) AS aqi
FROM environment.air_quality_hourly a
JOIN environment.air_stations s ON a.station_id = s.station_id
WHERE a.month = '2025-12' AND a.observed_at = (SELECT t FROM latest)
GROUP BY s.district ORDER BY s.district;
-- standard:
WITH latest AS (SELECT max(observed_at) AS t FROM environment.air_quality_hourly)
SELECT s.district,
       round(avg(a.pm25), 3) AS pm25, round(avg(a.pm10), 3) AS pm10, round(avg(a.o3), 3) AS o3
FROM environment.air_quality_hourly a
JOIN environment.air_stations s ON a.station_id = s.station_id
WHERE a.month = '2025-12' AND a.observed_at = (SELECT t FROM latest)
GROUP BY s.district ORDER BY s.district;
