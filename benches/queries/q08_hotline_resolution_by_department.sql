-- need: analyst: 12345 hotline resolution time and satisfaction by handling department
-- shape: scan + group-by
SELECT handling_department, count(*) AS closed_cases,
       round(avg((date_part('epoch', closed_at) - date_part('epoch', received_at)) / 3600.0), 3) AS avg_hours,
       round(avg(satisfaction), 3) AS satisfaction
FROM hotline.cases WHERE status = 'closed' AND closed_at IS NOT NULL
GROUP BY handling_department ORDER BY handling_department;
