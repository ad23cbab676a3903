-- Every special-fund program and year with its budget and what was paid from it
-- (the sum of finance.expenditures; 0 when nothing was paid). The evaluation views
-- build on it, so payments are summed in one place.
SELECT p.program_id, p.year, p.program_name, p.department, p.fund_category, p.budget_amount,
       coalesce(s.spent, 0) AS spent
FROM finance.programs p
LEFT JOIN (SELECT program_id, year, sum(amount) AS spent FROM finance.expenditures GROUP BY 1, 2) s
  USING (program_id, year)
