-- Every performance indicator of every program and year, scored (DOMAIN.md §4).
--
-- Each indicator's weight is its full marks. The budget-execution indicator is scored
-- by budget_execution_score over the payments (finance.program_spending: spent / budget,
-- capped); every other indicator by indicator_score by its direction. An indicator
-- without an actual value is `missing` and scores NULL; `over_completed` flags
-- actual / target above citylake.over_completion_threshold (target / actual for
-- lower-is-better indicators) for review.
SELECT i.program_id, i.year, i.indicator_id, i.level1, i.level2, i.indicator_name, i.direction,
       i.target_value, i.target_high, i.actual_value, i.unit, i.weight,
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
FROM finance.performance_indicators i JOIN finance.program_spending p USING (program_id, year)
