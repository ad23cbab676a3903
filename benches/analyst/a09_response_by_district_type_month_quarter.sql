-- need: analyst: emergency response time by district, incident type and month over a quarter
-- shape: fact (incidents, one quarter) ⋈ dimension (districts), grouped by dimension attributes and month
SELECT d.district_name_zh, i.incident_type, date_trunc('month', i.reported_at) AS month,
       count(*) AS incidents,
       round(avg(extract(epoch FROM i.arrived_at) - extract(epoch FROM i.reported_at)) / 60.0, 2) AS minutes_to_arrive
FROM emergency.incidents i JOIN common.districts d ON i.district = d.district
WHERE i.reported_at >= TIMESTAMP '2025-04-01 00:00:00' AND i.reported_at < TIMESTAMP '2025-07-01 00:00:00'
GROUP BY d.district_name_zh, i.incident_type, date_trunc('month', i.reported_at)
ORDER BY d.district_name_zh, i.incident_type, month;
