-- Spending-performance evaluation of every special-fund program and year
-- (财预〔2020〕10号 as DOMAIN.md §4 gives it), one row per program-year, from the
-- indicator scores of finance.indicator_scores.
--
-- The level-1 dimension scores are the sums of their indicators (NULL when a program
-- has no indicator of that dimension); the total is their sum; the grade is
-- perf_grade of the total, whose bands are configuration (catalog [evaluation],
-- SET citylake.grade_*). A missing indicator scores 0 and marks the program-year
-- incomplete; over-completed indicators are counted for review; weights_total shows
-- whether the weights add up to 100 as the framework requires.
SELECT p.program_id, p.year, p.program_name, p.department, p.fund_category,
       p.budget_amount, p.spent,
       budget_execution_rate(p.spent, p.budget_amount) AS budget_execution_rate,
       sum(coalesce(s.score, 0)) FILTER (WHERE s.level1 = 'decision') AS decision_score,
       sum(coalesce(s.score, 0)) FILTER (WHERE s.level1 = 'process') AS process_score,
       sum(coalesce(s.score, 0)) FILTER (WHERE s.level1 = 'output') AS output_score,
       sum(coalesce(s.score, 0)) FILTER (WHERE s.level1 = 'outcome') AS outcome_score,
       sum(coalesce(s.score, 0)) AS total_score,
       perf_grade(sum(coalesce(s.score, 0))) AS grade,
       perf_grade(sum(coalesce(s.score, 0)), 'en') AS grade_en,
       sum(s.weight) AS weights_total,
       count(*) FILTER (WHERE s.missing) AS missing_indicators,
       count(*) FILTER (WHERE s.over_completed) AS over_completed_indicators,
       count(*) FILTER (WHERE s.missing) > 0 AS incomplete
FROM finance.program_spending p JOIN finance.indicator_scores s USING (program_id, year)
GROUP BY p.program_id, p.year, p.program_name, p.department, p.fund_category, p.budget_amount, p.spent
