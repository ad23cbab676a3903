-- need: finance: budget execution of special funds by department and year
-- shape: join + group-by + functions
WITH spent AS (SELECT program_id, year, sum(amount) AS spent FROM finance.expenditures GROUP BY 1, 2)
SELECT p.department, p.year, sum(p.budget_amount) AS budget, sum(coalesce(s.spent, 0)) AS spent,
       budget_execution_rate(sum(coalesce(s.spent, 0)), sum(p.budget_amount)) AS rate
FROM finance.programs p LEFT JOIN spent s ON p.program_id = s.program_id AND p.year = s.year
GROUP BY p.department, p.year ORDER BY p.department, p.year;
-- standard:
WITH spent AS (SELECT program_id, year, sum(amount) AS spent FROM finance.expenditures GROUP BY 1, 2)
SELECT p.department, p.year, sum(p.budget_amount) AS budget, sum(coalesce(s.spent, 0)) AS spent,
       round(CAST(sum(coalesce(s.spent, 0)) AS DOUBLE) / CAST(sum(p.budget_amount) AS DOUBLE), 6) AS rate
FROM finance.programs p LEFT JOIN spent s ON p.program_id = s.program_id AND p.year = s.year
GROUP BY p.department, p.year ORDER BY p.department, p.year;
