-- need: cockpit: open 12345 hotline cases by category and district
-- shape: scan + group-by
SELECT category, district, count(*) AS open_cases
FROM hotline.cases WHERE status <> 'closed'
GROUP BY category, district ORDER BY category, district;
