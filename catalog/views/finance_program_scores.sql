-- Spending-performance evaluation of every special-fund program and year
-- (财预〔2020〕10号 as DOMAIN.md §4 gives it), one row per program-year.
--
-- Each indicator of finance.performance_indicators is scored with its own weight as
-- full marks: the budget-execution indicator by budget_execution_score over the
-- payments of finance.expenditures (spent / budget, capped), every other by
-- indicator_score by its direction. The level-1 dimension scores are the sums of
-- their indicators; the total is their sum; the grade is perf_grade of the total,
-- whose bands are configuration (catalog [evaluation], SET citylake.grade_*).
-- An indicator without an actual value scores 0 and marks the program-year
-- incomplete; over-completed indicators (over_completion_flag, threshold from the
-- same configuration) are counted for review; weights_total shows whether the
-- program's weights add up to 100 as the framework requires.
WITH spent AS (
  SELECT program_id, year, sum(amount) AS spent
  FROM finance.expenditures
  GROUP BY 1, 2
),
programs AS (
  SELECT p.program_id, p.year, p.program_name, p.department, p.fund_category, p.budget_amount,
         coalesce(s.spent, 0) AS spent
  FROM finance.programs p LEFT JOIN spent s USING (program_id, year)
),
scored AS (
  SELECT i.program_id, i.year, i.level1, i.weight,
         i.actual_value IS NULL AS missing,
         CASE
           WHEN i.level2 = 'budget_execution' THEN budget_execution_score(p.spent, p.budget_amount, i.weight)
           ELSE indicator_score(i.actual_value, i.target_value, i.direction, i.weight, i.target_high)
         END AS score,
         CASE i.direction
           WHEN 'lower_better' THEN over_completion_flag(i.target_value, i.actual_value)
           WHEN 'higher_better' THEN over_completion_flag(i.actual_value, i.target_value)
           ELSE false
         END AS over_completed
  FROM finance.performance_indicators i JOIN programs p USING (program_id, year)
)
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
FROM programs p JOIN scored s USING (program_id, year)
GROUP BY p.program_id, p.year, p.program_name, p.department, p.fund_category, p.budget_amount, p.spent
