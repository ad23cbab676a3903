-- need: analyst: the city's daily traffic volume and mean speed over the year
-- shape: full scan + group-by
SELECT dt, sum(vehicle_count) AS vehicles, round(avg(avg_speed_kmh), 4) AS speed
FROM traffic.segment_speed GROUP BY dt ORDER BY dt;
