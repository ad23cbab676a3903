-- need: cockpit: emergency incidents of the last day by type, with severity and arrivals
-- shape: selective partition filter + group-by
SELECT incident_type, count(*) AS incidents, round(avg(severity), 3) AS avg_severity,
       count(arrived_at) AS arrived
FROM emergency.incidents
WHERE month = '2025-12' AND reported_at >= TIMESTAMP '2025-12-31 00:00:00'
GROUP BY incident_type ORDER BY incident_type;
