-- need: finance: the spending-performance evaluation of every program (the program-scores view) summarised by department and grade
-- shape: view over joins + evaluation functions
SELECT department, year, grade, count(*) AS programs, round(avg(total_score), 2) AS avg_score
FROM finance.program_scores GROUP BY department, year, grade ORDER BY department, year, grade;
-- standard:
WITH spent AS (SELECT program_id, year, sum(amount) AS spent FROM finance.expenditures GROUP BY 1, 2)
SELECT p.department, p.year, count(*) AS programs,
       round(avg(CAST(coalesce(s.spent, 0) AS DOUBLE) / CAST(p.budget_amount AS DOUBLE)), 4) AS avg_execution
FROM finance.programs p LEFT JOIN spent s ON p.program_id = s.program_id AND p.year = s.year
GROUP BY p.department, p.year ORDER BY p.department, p.year;
