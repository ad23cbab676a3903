-- need: analyst: rank monitoring stations within their district by mean PM2.5 each month
-- shape: group-by + window (RANK)
WITH monthly AS (
  SELECT s.district, a.station_id, a.month, avg(a.pm25) AS pm25
  FROM environment.air_quality_hourly a JOIN environment.air_stations s ON a.station_id = s.station_id
  GROUP BY 1, 2, 3)
SELECT district, month, station_id, round(pm25, 3) AS pm25,
       rank() OVER (PARTITION BY district, month ORDER BY pm25 DESC, station_id) AS rnk
FROM monthly ORDER BY district, month, rnk;
