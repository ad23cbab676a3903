-- need: analyst: hotline cases per 10,000 residents by district, category and month over the year
-- shape: fact (hotline cases, the year) ⋈ dimension (districts), grouped by dimension attribute, category and month
SELECT d.district_name_zh, c.category, date_trunc('month', c.received_at) AS month,
       count(*) AS cases,
       round(count(*) * 10000.0 / max(d.population), 3) AS per_10k,
       round(avg(c.satisfaction), 3) AS satisfaction
FROM hotline.cases c JOIN common.districts d ON c.district = d.district
GROUP BY d.district_name_zh, c.category, date_trunc('month', c.received_at)
ORDER BY d.district_name_zh, c.category, month;
