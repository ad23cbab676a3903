-- need: analyst: does traffic drive air quality? correlation of daily AQI and daily traffic volume by district
-- shape: two large aggregations joined + statistics + functions
WITH air AS (
  SELECT s.district, CAST(a.observed_at AS DATE) AS day,
         aqi_cn_daily(avg(a.pm25), avg(a.pm10), avg(a.so2), avg(a.no2), avg(a.co), max(a.o3_8h)) AS aqi
  FROM environment.air_quality_hourly a JOIN environment.air_stations s ON a.station_id = s.station_id
  GROUP BY 1, 2),
traffic AS (
  SELECT r.district, v.dt AS day, sum(v.vehicle_count) AS vehicles
  FROM traffic.segment_speed v JOIN traffic.road_segments r ON v.segment_id = r.segment_id
  GROUP BY 1, 2)
SELECT air.district, count(*) AS days, round(corr(air.aqi, traffic.vehicles), 4) AS r
FROM air JOIN traffic ON air.district = traffic.district AND air.day = traffic.day
GROUP BY air.district ORDER BY air.district;
-- standard:
WITH air AS (
  SELECT s.district, CAST(a.observed_at AS DATE) AS day, avg(a.pm25) AS pm25
  FROM environment.air_quality_hourly a JOIN environment.air_stations s ON a.station_id = s.station_id
  GROUP BY 1, 2),
traffic AS (
  SELECT r.district, v.dt AS day, sum(v.vehicle_count) AS vehicles
  FROM traffic.segment_speed v JOIN traffic.road_segments r ON v.segment_id = r.segment_id
  GROUP BY 1, 2)
SELECT air.district, count(*) AS days, round(corr(air.pm25, traffic.vehicles), 4) AS r
FROM air JOIN traffic ON air.district = traffic.district AND air.day = traffic.day
GROUP BY air.district ORDER BY air.district;
