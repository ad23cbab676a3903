-- need: emergency office: incidents per 10,000 residents by district
-- shape: join with a dimension + group-by
SELECT d.district, d.population, count(i.incident_id) AS incidents,
       round(count(i.incident_id) * 10000.0 / d.population, 4) AS per_10k
FROM common.districts d LEFT JOIN emergency.incidents i ON d.district = i.district
GROUP BY d.district, d.population ORDER BY d.district;
