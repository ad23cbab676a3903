-- need: analyst: emergency response-time percentiles (minutes from report to arrival) by incident type
-- shape: scan + ordered-set aggregates
SELECT incident_type, count(*) AS n,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY (date_part('epoch', arrived_at) - date_part('epoch', reported_at)) / 60.0), 3) AS p50_min,
       round(percentile_cont(0.9) WITHIN GROUP (ORDER BY (date_part('epoch', arrived_at) - date_part('epoch', reported_at)) / 60.0), 3) AS p90_min
FROM emergency.incidents WHERE arrived_at IS NOT NULL
GROUP BY incident_type ORDER BY incident_type;
