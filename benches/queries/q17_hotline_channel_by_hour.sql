-- need: hotline office: when and how citizens call — cases by channel and hour of day
-- shape: scan + group-by
SELECT channel, extract(hour FROM received_at) AS h, count(*) AS cases
FROM hotline.cases GROUP BY 1, 2 ORDER BY 1, 2;
